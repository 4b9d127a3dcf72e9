//! `mariadb`: not implemented yet.

use bus_schema::Command;

use super::{Ctx, Outcome};
use crate::config::RootdConfig;

pub fn available(_cfg: &RootdConfig) -> Result<(), String> {
    Err("not implemented yet".into())
}

pub async fn run(cmd: &Command, _ctx: &Ctx<'_>) -> Outcome {
    Outcome::failed(format!("{} is not implemented yet", cmd.action))
}
