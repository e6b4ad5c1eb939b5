//! The CLI verbs on the admin API (`weir status`, `weir targets register`, …): build the request,
//! call the daemon, print its answer as text or (`--json`) as the API object itself.

use serde::de::DeserializeOwned;

use super::{client, model, path, text, views};
use crate::cli::{ClientArgs, Command, TargetChange, TargetsCommand};

/// One verb's request and how its answer is shown.
struct Call {
    method: &'static str,
    uri: String,
    body: Option<serde_json::Value>,
    show: fn(&serde_json::Value) -> anyhow::Result<String>,
}

fn parse<T: DeserializeOwned>(v: &serde_json::Value) -> anyhow::Result<T> {
    serde_json::from_value(v.clone())
        .map_err(|e| anyhow::anyhow!("unexpected answer from the daemon ({e}): {v}"))
}

fn change_body(c: &TargetChange) -> serde_json::Value {
    serde_json::json!({ "targets": c.targets })
}

/// The request a verb makes, with its client options; `None` for commands that are not verbs
/// on the admin API.
fn call_for(cmd: &Command) -> Option<(Call, &ClientArgs)> {
    let get = |uri: String, show| Call {
        method: "GET",
        uri,
        body: None,
        show,
    };
    Some(match cmd {
        Command::Status(c) => (
            get("/v1/status".into(), |v| Ok(text::status(&parse(v)?))),
            c,
        ),
        Command::Listeners(c) => (
            get("/v1/listeners".into(), |v| {
                Ok(text::listeners(&parse::<views::ListenerList>(v)?))
            }),
            c,
        ),
        Command::Rules(r) => (
            get(format!("/v1/listeners/{}/rules", r.listener), |v| {
                Ok(text::rules(&parse::<views::RuleList>(v)?))
            }),
            &r.client,
        ),
        Command::Certificates(a) => (
            get(
                match a.listener {
                    Some(p) => format!("/v1/listeners/{p}/certificates"),
                    None => "/v1/certificates".into(),
                },
                |v| Ok(text::certificates(&parse(v)?)),
            ),
            &a.client,
        ),
        Command::Reload(c) => (
            Call {
                method: "POST",
                uri: "/v1/reload".into(),
                body: None,
                show: |v| Ok(text::reloaded(&parse::<model::Reloaded>(v)?)),
            },
            c,
        ),
        Command::Targets { command } => targets_call(command),
        _ => return None,
    })
}

fn targets_call(cmd: &TargetsCommand) -> (Call, &ClientArgs) {
    match cmd {
        TargetsCommand::Health {
            target_group,
            client,
        } => {
            let uri = match target_group {
                Some(g) => format!("/v1/target-health?target_group={g}"),
                None => "/v1/target-health".into(),
            };
            (
                Call {
                    method: "GET",
                    uri,
                    body: None,
                    show: |v| Ok(text::health(v)),
                },
                client,
            )
        }
        TargetsCommand::List {
            target_group,
            client,
        } => (
            Call {
                method: "GET",
                uri: format!("/v1/target-groups/{target_group}/targets"),
                body: None,
                show: |v| Ok(text::target_list(&parse(v)?)),
            },
            client,
        ),
        TargetsCommand::Discovery {
            target_group,
            client,
        } => {
            let (uri, show): (String, fn(&serde_json::Value) -> anyhow::Result<String>) =
                match target_group {
                    Some(g) => (format!("/v1/target-groups/{g}/discovery"), |v| {
                        Ok(text::discovery(&[parse(v)?], unix_ms_now()))
                    }),
                    None => ("/v1/discovery".into(), |v| {
                        let l: model::DiscoveryList = parse(v)?;
                        Ok(text::discovery(&l.target_groups, unix_ms_now()))
                    }),
                };
            (
                Call {
                    method: "GET",
                    uri,
                    body: None,
                    show,
                },
                client,
            )
        }
        TargetsCommand::Register(c) => (
            Call {
                method: "POST",
                uri: format!("/v1/target-groups/{}/targets", c.target_group),
                body: Some(change_body(c)),
                show: |v| Ok(text::targets_changed(&parse(v)?, "registered")),
            },
            &c.client,
        ),
        TargetsCommand::Deregister(c) => (
            Call {
                method: "DELETE",
                uri: format!("/v1/target-groups/{}/targets", c.target_group),
                body: Some(change_body(c)),
                show: |v| Ok(text::targets_changed(&parse(v)?, "deregistered")),
            },
            &c.client,
        ),
    }
}

/// This host's clock as Unix milliseconds: the daemon's times are shown relative to it (the
/// daemon runs on the same host).
fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs the admin verb `cmd`. With `--json`, an error object from the daemon is printed on
/// stdout as well (and the exit status is still a failure).
pub fn run(cmd: &Command) -> anyhow::Result<()> {
    let (call, args) = call_for(cmd).ok_or_else(|| anyhow::anyhow!("not an admin API verb"))?;
    run_call(call, args)
}

fn run_call(call: Call, args: &ClientArgs) -> anyhow::Result<()> {
    let socket = path::for_client(args.socket.as_deref(), args.iface.as_deref())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = rt.block_on(client::call(
        &socket,
        call.method,
        &call.uri,
        call.body.as_ref(),
    ));
    match answer {
        Ok(v) if args.json => {
            crate::cli::out(format_args!("{}\n", serde_json::to_string_pretty(&v)?))
        }
        Ok(v) => crate::cli::out(format_args!("{}", (call.show)(&v)?)),
        Err(e) => {
            if let (true, client::ClientError::Api { body, .. }) = (args.json, &e) {
                crate::cli::out(format_args!("{}\n", serde_json::to_string_pretty(body)?));
            }
            return Err(e.into());
        }
    }
    Ok(())
}
