//! `sys.reboot` and `sys.reboot_cancel`: the only `sys` actions rootd runs.
//! They run rootd's `shutdown_program` (`/usr/sbin/shutdown` unless
//! configured): `<program> -r +MINUTES MESSAGE` schedules the reboot (the
//! message one argv element, never through a shell; empty: none), and
//! `<program> -c` cancels a pending one. The params were checked by the
//! catalogue (delay 0..=1440 minutes, message ≤ 200 printable characters,
//! not starting with `-`) and are checked again here.
//!
//! It does not decide when to reboot or verify that the host came back:
//! that is the control plane's (maintenance windows).

use bus_schema::catalogue::sys::RebootParams;
use bus_schema::Command;
use serde_json::json;

use crate::config::RootdConfig;
use crate::toolkit::{params, Ctx, Outcome, Runner};

/// Whether the shutdown program is there.
pub fn available(cfg: &RootdConfig) -> Result<(), String> {
    if cfg.shutdown_program.is_file() {
        Ok(())
    } else {
        Err(format!(
            "{} does not exist (set shutdown_program in rootd.toml)",
            cfg.shutdown_program.display()
        ))
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

pub async fn run(cmd: &Command, ctx: &Ctx<'_>) -> Outcome {
    match cmd.action.as_str() {
        "sys.reboot" => {
            let p: RebootParams = match params(cmd) {
                Ok(p) => p,
                Err(o) => return o,
            };
            reboot(&p, ctx).await
        }
        "sys.reboot_cancel" => cancel(ctx).await,
        other => Outcome::failed(format!("rootd has no implementation of {other}")),
    }
}

/// The argv of a scheduled reboot.
pub fn reboot_argv<'a>(program: &'a str, when: &'a str, message: &'a str) -> Vec<&'a str> {
    let mut argv = vec![program, "-r", when];
    if !message.is_empty() {
        argv.push(message);
    }
    argv
}

async fn reboot(p: &RebootParams, ctx: &Ctx<'_>) -> Outcome {
    let program = ctx.cfg.shutdown_program.to_string_lossy().into_owned();
    let when = format!("+{}", p.delay_minutes);
    let asked_at = now_ms();
    let runner = Runner::new(ctx);
    let ran = match runner
        .run(&reboot_argv(&program, &when, &p.message), &[], true)
        .await
    {
        Ok(r) => r,
        Err(o) => return o,
    };
    if !ran.ok() {
        return Outcome {
            exit_code: ran.exit_code,
            ..Outcome::failed(format!(
                "{program} -r {when} failed: {}; nothing is scheduled",
                ran.error_tail()
            ))
        };
    }
    let due_at = asked_at + i64::from(p.delay_minutes) * 60_000;
    let summary = if p.delay_minutes == 0 {
        "reboot started now".to_string()
    } else {
        format!(
            "reboot scheduled in {} minute(s); sys.reboot_cancel cancels it",
            p.delay_minutes
        )
    };
    Outcome::succeeded(
        summary,
        json!({
            "scheduled": true,
            "delay_minutes": p.delay_minutes,
            "due_at": due_at,
            "message": p.message,
        }),
    )
}

async fn cancel(ctx: &Ctx<'_>) -> Outcome {
    let program = ctx.cfg.shutdown_program.to_string_lossy().into_owned();
    let runner = Runner::new(ctx);
    let ran = match runner.run(&[&program, "-c"], &[], true).await {
        Ok(r) => r,
        Err(o) => return o,
    };
    if !ran.ok() {
        return Outcome {
            exit_code: ran.exit_code,
            ..Outcome::failed(format!("{program} -c failed: {}", ran.error_tail()))
        };
    }
    Outcome::succeeded(
        "pending reboot cancelled (if there was one)",
        json!({ "cancelled": true }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_one_argument_and_empty_means_none() {
        assert_eq!(
            reboot_argv("/sbin/shutdown", "+5", "a; $(b) `c` | d"),
            ["/sbin/shutdown", "-r", "+5", "a; $(b) `c` | d"]
        );
        assert_eq!(
            reboot_argv("/sbin/shutdown", "+0", ""),
            ["/sbin/shutdown", "-r", "+0"]
        );
    }
}
