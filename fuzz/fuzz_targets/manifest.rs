//! App manifests (`manifest.yml`, YAML): `Manifest::parse` as the control
//! plane and rootd call it, with its size, depth and length limits; a
//! manifest that parses must print as YAML and parse back equal. Reading
//! the manifest directory (paths, files) is not fuzzed here.
#![no_main]

use bus_schema::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("fuzz/manifest.yml");
    if let Ok(m) = Manifest::parse(text, path) {
        let printed = serde_yaml_ng::to_string(&m).expect("a manifest prints");
        let back = Manifest::parse(&printed, path)
            .unwrap_or_else(|e| panic!("a printed manifest does not parse: {e}\n{printed}"));
        assert_eq!(back, m);
    }
});
