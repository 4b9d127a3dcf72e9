//! Rules for strings that end up as argv entries, SQL identifiers or file
//! names. Each refuses anything outside a small, known alphabet, so shell
//! metacharacters, newlines and `../` never get through.

/// `^[A-Za-z0-9_]{1,64}$`: database, user and table names.
pub fn check_ident(field: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 64 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "{field} {s:?} is not allowed: use 1 to 64 letters, digits or underscores"
        ));
    }
    Ok(())
}

/// The unit types systemd knows (the suffix of a unit name).
pub const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "device",
    "mount",
    "automount",
    "swap",
    "target",
    "path",
    "timer",
    "slice",
    "scope",
];

/// What [`parse_unit`] accepts, said in every refusal.
pub const UNIT_FORMS: &str = "accepted: NAME[.TYPE] or NAME@INSTANCE[.TYPE] \
     (a template is NAME@.TYPE), at most 255 bytes, not starting with '-'; \
     NAME uses letters, digits and :_.- ; INSTANCE also @; a \\xNN escape \
     (as systemd-escape writes it, e.g. site\\x2da) stands for any byte; \
     TYPE is one of service, socket, device, mount, automount, swap, target, \
     path, timer, slice, scope, and .service is meant when it is left out";

/// A systemd unit name, split the way systemd reads it (systemd.unit(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitName {
    /// Before the `@` (or the whole name without its type).
    pub prefix: String,
    /// After the `@`: `Some("")` for a template, `None` without an `@`.
    pub instance: Option<String>,
    /// The unit type, `service` when the name has none.
    pub kind: String,
}

impl UnitName {
    /// The full name with its type, e.g. `getty@tty1.service`.
    pub fn full(&self) -> String {
        match &self.instance {
            Some(i) => format!("{}@{i}.{}", self.prefix, self.kind),
            None => format!("{}.{}", self.prefix, self.kind),
        }
    }

    /// A template (`getty@.service`): no instance yet.
    pub fn is_template(&self) -> bool {
        self.instance.as_deref() == Some("")
    }

    /// Whether this (an allow-list entry) covers `unit`: the same unit, or
    /// `self` is a template and `unit` one of its instances.
    pub fn covers(&self, unit: &UnitName) -> bool {
        if self.prefix != unit.prefix || self.kind != unit.kind {
            return false;
        }
        self.is_template() && unit.instance.is_some() || self.instance == unit.instance
    }
}

/// Whether `s` uses only `allowed` characters and well-formed `\xNN` escapes.
fn unit_chars_ok(s: &str, at_too: bool) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            let ok = b.get(i + 1) == Some(&b'x')
                && b.get(i + 2).is_some_and(|h| h.is_ascii_hexdigit())
                && b.get(i + 3).is_some_and(|h| h.is_ascii_hexdigit());
            if !ok {
                return Err("a backslash must start a \\xNN escape".into());
            }
            i += 4;
            continue;
        }
        if !(c.is_ascii_alphanumeric() || b":_.-".contains(&c) || at_too && c == b'@') {
            return Err(format!("{:?} is not allowed there", c as char));
        }
        i += 1;
    }
    Ok(())
}

/// Parses a systemd unit name by systemd's rules (see [`UNIT_FORMS`]). The
/// error says what is wrong and what is accepted.
pub fn parse_unit(s: &str) -> Result<UnitName, String> {
    let refuse =
        |why: &str| format!("unit {s:?} is not a valid systemd unit name: {why}; {UNIT_FORMS}");
    if s.is_empty() {
        return Err(refuse("it is empty"));
    }
    if s.len() > 255 {
        return Err(refuse("it is longer than 255 bytes"));
    }
    if s.starts_with('-') {
        return Err(refuse("it starts with '-'"));
    }
    let (stem, kind) = match s.rsplit_once('.') {
        Some((stem, k)) if UNIT_TYPES.contains(&k) => (stem, k),
        _ => (s, "service"),
    };
    let (prefix, instance) = match stem.split_once('@') {
        Some((p, i)) => (p, Some(i)),
        None => (stem, None),
    };
    if prefix.is_empty() {
        return Err(refuse("the name before '@' or the type is empty"));
    }
    unit_chars_ok(prefix, false).map_err(|e| refuse(&e))?;
    if let Some(i) = instance {
        unit_chars_ok(i, true).map_err(|e| refuse(&e))?;
    }
    let unit = UnitName {
        prefix: prefix.to_string(),
        instance: instance.map(str::to_string),
        kind: kind.to_string(),
    };
    if unit.full().len() > 255 {
        return Err(refuse("with its type it is longer than 255 bytes"));
    }
    Ok(unit)
}

/// A unit an action can act on: a valid name (see [`parse_unit`]) that is
/// not a template (a template is started through one of its instances).
pub fn check_unit(s: &str) -> Result<(), String> {
    let u = parse_unit(s)?;
    if u.is_template() {
        return Err(format!(
            "unit {s:?} is a template; name one of its instances, e.g. {}@NAME.{}",
            u.prefix, u.kind
        ));
    }
    Ok(())
}

/// What [`parse_package`] accepts, said in every refusal.
pub const PACKAGE_FORMS: &str = "accepted: NAME; with apt NAME=VERSION, \
     NAME:ARCH and NAME:ARCH=VERSION; with dnf NAME-VERSION, \
     NAME-VERSION-RELEASE, NAME.ARCH and NAME-[EPOCH:]VERSION-RELEASE.ARCH. \
     NAME starts with a letter or digit and uses letters, digits and +._-~^ ; \
     VERSION starts with a digit, uses letters, digits and .+~_^- and may \
     start with an epoch (1:2.0-3); ARCH uses lower-case letters, digits \
     and _- ; at most 256 bytes";

/// A package as an operator names it, split by the catalogue's grammar
/// (manager-neutral: rootd checks the form against its manager).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    /// Everything before `:ARCH` / `=VERSION`: a name, or a dnf
    /// `NAME-VERSION...` / `NAME.ARCH` spelling (which only dnf can split).
    pub name: String,
    /// apt's `:ARCH`.
    pub arch: Option<String>,
    /// apt's `=VERSION`.
    pub version: Option<String>,
    /// A dnf `NAME-EPOCH:VERSION...` spelling (the `:` of an epoch inside
    /// the name part).
    pub dnf_epoch: bool,
}

fn version_ok(v: &str) -> Result<(), String> {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) => (Some(e), r),
        None => (None, v),
    };
    if let Some(e) = epoch {
        if e.is_empty() || !e.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("the epoch of version {v:?} is not a number"));
        }
    }
    let ok = rest.starts_with(|c: char| c.is_ascii_digit())
        && rest
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".+~_^-".contains(&c));
    if !ok {
        return Err(format!("version {v:?} is not a version"));
    }
    Ok(())
}

fn name_ok(n: &str) -> Result<(), String> {
    let ok = n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+._-~^".contains(&c));
    if !ok {
        return Err(format!("{n:?} is not a package name"));
    }
    Ok(())
}

/// Parses a package spec (see [`PACKAGE_FORMS`]). No shell metacharacter,
/// space or leading `-` gets through; the error says what is accepted.
pub fn parse_package(s: &str) -> Result<PackageSpec, String> {
    let refuse = |why: String| format!("package {s:?} is not accepted: {why}; {PACKAGE_FORMS}");
    if s.is_empty() || s.len() > 256 {
        return Err(refuse("it is empty or longer than 256 bytes".into()));
    }
    let (left, version) = match s.split_once('=') {
        Some((l, v)) => (l, Some(v)),
        None => (s, None),
    };
    if let Some(v) = version {
        version_ok(v).map_err(refuse)?;
    }
    let (name, arch, dnf_epoch) = match left.split_once(':') {
        None => (left, None, false),
        Some((before, after)) => {
            // `vim-2:9.0-1.fc39`: an epoch after `NAME-` (dnf); otherwise
            // `NAME:ARCH` (apt).
            let epoch_digits = before
                .rsplit_once('-')
                .map(|(n, e)| {
                    !n.is_empty() && !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
                })
                .unwrap_or(false);
            if epoch_digits {
                if version.is_some() {
                    return Err(refuse("a version is given twice".into()));
                }
                version_ok(after)
                    .map_err(|_| refuse(format!("{after:?} after the epoch is not a version")))?;
                (left, None, true)
            } else {
                let arch_ok = !after.is_empty()
                    && after.len() <= 32
                    && after.bytes().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-".contains(&c)
                    });
                if !arch_ok {
                    return Err(refuse(format!("{after:?} is not an architecture")));
                }
                (before, Some(after.to_string()), false)
            }
        }
    };
    let bare = if dnf_epoch {
        name.split_once(':').map(|(b, _)| b).unwrap_or(name)
    } else {
        name
    };
    name_ok(bare).map_err(refuse)?;
    Ok(PackageSpec {
        name: name.to_string(),
        arch,
        version: version.map(str::to_string),
        dnf_epoch,
    })
}

/// A package spec the catalogue accepts (see [`parse_package`]).
pub fn check_package(s: &str) -> Result<(), String> {
    parse_package(s).map(|_| ())
}

/// An id for an app manifest: lower-case letters, digits and `-`, 1 to 64;
/// never a path.
pub fn check_app_id(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(format!(
            "app id {s:?} is not allowed: use 1 to 64 lower-case letters, digits or -"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_strings_are_refused() {
        for bad in [
            "",
            "a;b",
            "$(reboot)",
            "`id`",
            "a\nb",
            "../etc",
            "a b",
            "-rf",
            "x'--",
        ] {
            assert!(check_ident("name", bad).is_err(), "{bad:?}");
            assert!(check_unit(bad).is_err(), "{bad:?}");
            assert!(check_package(bad).is_err(), "{bad:?}");
            assert!(check_app_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_ident("name", &"a".repeat(65)).is_err());
        check_ident("name", "shop_db1").unwrap();
        check_unit("nginx.service").unwrap();
        check_unit("getty@tty1.service").unwrap();
        check_package("libc6").unwrap();
        check_package("g++").unwrap();
        check_app_id("node-exporter").unwrap();
    }

    #[test]
    fn unit_names_follow_systemd() {
        let u = parse_unit("getty@tty1").unwrap();
        assert_eq!(u.full(), "getty@tty1.service");
        let t = parse_unit("getty@.service").unwrap();
        assert!(t.is_template() && t.covers(&u));
        assert!(parse_unit("wg-quick@")
            .unwrap()
            .covers(&parse_unit("wg-quick@wg0").unwrap()));
        assert!(!t.covers(&parse_unit("getty@tty1.socket").unwrap()));
        assert!(!parse_unit("getty@tty2").unwrap().covers(&u));
        assert!(!parse_unit("getty").unwrap().covers(&u));
        assert_eq!(
            parse_unit("nginx").unwrap(),
            parse_unit("nginx.service").unwrap()
        );
        assert_eq!(parse_unit("foo.bar").unwrap().full(), "foo.bar.service");
        assert_eq!(parse_unit("home.mount").unwrap().kind, "mount");
        check_unit("site\\x2da.service").unwrap();
        check_unit("systemd-fsck@dev-disk-by\\x2duuid-AB12.service").unwrap();
        check_unit("user@1000.service").unwrap();
        check_unit(&"a".repeat(247)).unwrap();
        for bad in [
            "getty@.service",
            "site\\x2.service",
            "site\\a.service",
            "a/b",
            "@tty1.service",
            ".service",
        ] {
            let e = check_unit(bad).unwrap_err();
            assert!(e.contains(bad) || e.contains("template"), "{bad}: {e}");
        }
        // `a@b@c`: @ is allowed in the instance (systemd allows it).
        assert!(parse_unit("a@b@c.service").is_ok());
        assert!(check_unit(&"a".repeat(248)).unwrap_err().contains("255"));
        assert!(check_unit("x y").unwrap_err().contains("TYPE is one of"));
    }

    #[test]
    fn package_specs_in_each_managers_syntax() {
        let p = parse_package("pkg=1.2-3").unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_deref()),
            ("pkg", Some("1.2-3"))
        );
        let p = parse_package("openssl=1:3.0.15-1~deb12u1").unwrap();
        assert_eq!(p.version.as_deref(), Some("1:3.0.15-1~deb12u1"));
        let p = parse_package("libc6:i386=2.36-9").unwrap();
        assert_eq!(p.arch.as_deref(), Some("i386"));
        assert_eq!(p.name, "libc6");
        let p = parse_package("glibc.i686").unwrap();
        assert_eq!((p.name.as_str(), p.arch), ("glibc.i686", None));
        let p = parse_package("vim-enhanced-2:9.0.2081-1.fc39.x86_64").unwrap();
        assert!(p.dnf_epoch && p.arch.is_none() && p.version.is_none());
        parse_package("vim").unwrap();
        parse_package("kernel-6.5.6-300.fc39").unwrap();
        for bad in [
            "-o",
            "pkg=",
            "pkg=x1",
            "pkg==1",
            "pkg=1;reboot",
            "pkg:AMD64",
            "pkg:",
            "pkg=a:1",
            "vim-2:9.0=1",
            "p kg",
            "pkg=$(id)",
        ] {
            let e = parse_package(bad).unwrap_err();
            assert!(
                e.contains("NAME=VERSION") && e.contains("NAME.ARCH"),
                "{bad}: {e}"
            );
        }
    }
}
