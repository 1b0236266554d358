//! `liverseg node`: a DICOM node that segments CT series on arrival. Receives by
//! C-STORE (and answers C-ECHO), queues each complete series on disk, runs the
//! processor (by default `liverseg segment`) as a subprocess and sends the
//! DICOM-SEG / RTSTRUCT back by C-STORE. The logic lives in liverseg-node.

use anyhow::{anyhow, bail};
use liverseg_node::{Destination, NodeConfig, ReplyTo};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Storage folder: received series, the job queue, results and logs.
    #[arg(long)]
    pub storage: PathBuf,
    /// This node's AE title (callers must call it by this title).
    #[arg(long, default_value = "LIVERSEG")]
    pub ae_title: String,
    /// TCP port to listen on.
    #[arg(long, default_value_t = 11112)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Calling AE title allowed to send (repeat for several). Without any, every
    /// caller is accepted.
    #[arg(long = "allow", value_name = "AE")]
    pub allow: Vec<String>,
    /// Series processed at the same time.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Seconds without a new instance after which a series counts as complete
    /// even though its association was not released.
    #[arg(long, default_value_t = 60.0)]
    pub quiet_period: f64,
    /// Send results to this C-STORE SCP: AE@host:port.
    #[arg(long, value_name = "AE@HOST:PORT", conflicts_with = "reply_port")]
    pub dest: Option<String>,
    /// Send results back to the AE that sent the series, at its IP address and
    /// this port.
    #[arg(long, value_name = "PORT")]
    pub reply_port: Option<u16>,
    /// Processor command; `{input}` = series folder, `{output}` = folder for the
    /// results (every *.dcm left there is sent). Split on whitespace, no shell.
    /// Default: this program's `segment {input} -o {output} --format dicom-seg,rtstruct --json`.
    #[arg(long, value_name = "TEMPLATE")]
    pub run: Option<String>,
    /// Seconds a processor may run before it is stopped.
    #[arg(long, default_value_t = 3600.0)]
    pub processor_timeout: f64,
    /// Send retries after a failed attempt (waits double each time).
    #[arg(long, default_value_t = 3)]
    pub send_retries: u32,
    /// Seconds before the first send retry.
    #[arg(long, default_value_t = 5.0)]
    pub retry_backoff: f64,
}

fn secs(name: &str, v: f64) -> anyhow::Result<Duration> {
    if !v.is_finite() || v <= 0.0 || v > 1e7 {
        bail!("--{name} must be a positive number of seconds, got {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let processor: Vec<String> = match &args.run {
        Some(t) => t.split_whitespace().map(String::from).collect(),
        None => {
            let exe = std::env::current_exe().map_err(|e| {
                anyhow!("cannot find this program's path for the default processor: {e}")
            })?;
            vec![
                exe.to_string_lossy().into_owned(),
                "segment".into(),
                "{input}".into(),
                "-o".into(),
                "{output}".into(),
                "--format".into(),
                "dicom-seg,rtstruct".into(),
                "--json".into(),
            ]
        }
    };
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let mut cfg = NodeConfig::new(args.storage, processor);
    cfg.ae_title = args.ae_title;
    cfg.bind = SocketAddr::new(args.bind, args.port);
    cfg.allowed_callers = args.allow;
    cfg.concurrency = args.concurrency;
    cfg.quiet_period = secs("quiet-period", args.quiet_period)?;
    cfg.processor_timeout = secs("processor-timeout", args.processor_timeout)?;
    cfg.send_retries = args.send_retries;
    cfg.retry_backoff = secs("retry-backoff", args.retry_backoff)?;
    cfg.reply_to = match (args.dest, args.reply_port) {
        (Some(d), _) => ReplyTo::Fixed(Destination::parse(&d).map_err(|e| anyhow!(e))?),
        (None, Some(port)) => ReplyTo::Caller { port },
        (None, None) => ReplyTo::Nowhere,
    };
    let node = liverseg_node::start(cfg)?;
    node.wait();
    Ok(ExitCode::SUCCESS)
}
