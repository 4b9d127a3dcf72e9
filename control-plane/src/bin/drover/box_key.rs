//! `drover agents box-key <id>` and `drover agents accept-box-key <id>`:
//! the rootd box key a host's secrets are sealed to, and accepting a new
//! one the host reported (after checking the host: rootd reinstalled or its
//! state lost). Owns only the arguments' output; the rules are the control
//! plane's `sealing`.

use control_plane::client;

use crate::print::print_json;

/// Shows the pinned key and any different key the host reported since.
pub async fn show(api: &client::ApiClient, id: &str, json: bool) -> anyhow::Result<()> {
    let v = api.get(&format!("/agents/{id}/box-key")).await?;
    if json {
        return print_json(&v);
    }
    println!("pinned key:  {}", v["public_key"].as_str().unwrap_or(""));
    println!("pinned by:   {}", v["pinned_by"].as_str().unwrap_or(""));
    match v["offered_key"].as_str() {
        Some(k) => {
            println!("offered key: {k} (refused: secrets for this host are refused)");
            println!(
                "If rootd on this host was reinstalled or lost its state, accept it with \
                 `drover agents accept-box-key {id}`."
            );
        }
        None => println!("offered key: none"),
    }
    Ok(())
}

/// Pins the key the host offered.
pub async fn accept(api: &client::ApiClient, id: &str, json: bool) -> anyhow::Result<()> {
    let v = api
        .post(
            &format!("/agents/{id}/box-key/accept"),
            &serde_json::json!({}),
        )
        .await?;
    if json {
        return print_json(&v);
    }
    println!(
        "agent {id}: secrets are now sealed to rootd key {}",
        v["public_key"].as_str().unwrap_or("?")
    );
    Ok(())
}
