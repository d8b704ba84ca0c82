//! Logs (tracing, text or JSON) and the Prometheus recorder.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, SettingError, Settings};

/// Installs the global subscriber. A second call (tests) is harmless.
pub fn init_logging(settings: &Settings) -> Result<(), SettingError> {
    let filter = EnvFilter::try_new(&settings.log)
        .map_err(|e| SettingError::new("PBX_BRIDGE_LOG", e.to_string()))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}

/// Installs the Prometheus recorder, or `None` if one is already installed
/// (several services in one test process).
pub fn init_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).ok()?;
    describe();
    Some(handle)
}

fn describe() {
    metrics::describe_counter!(
        "pbx_http_requests_total",
        "Admin API requests by status class"
    );
    metrics::describe_gauge!(
        "pbx_attendances_open",
        "Attendances not yet closed, by status"
    );
    metrics::describe_gauge!("pbx_ami_connected", "1 while the AMI session is up");
    metrics::describe_gauge!("pbx_registrations", "SIP contacts currently bound");
    metrics::describe_gauge!(
        "pbx_trunk_registered",
        "1 while the bridge holds a registration with the trunk (by trunk name)"
    );
    metrics::describe_counter!(
        "pbx_trunk_register_attempts_total",
        "REGISTER exchanges with trunks by trunk and result (registered, unregistered, auth_failed, rejected, server_error, timeout, transport_error)"
    );
    metrics::describe_histogram!(
        "pbx_call_setup_seconds",
        "B2BUA setup latency: stage=invite_to_fork (INVITE in → first agent INVITE out), stage=answer_to_caller (agent 200 OK in → caller 200 OK out)"
    );
    metrics::describe_gauge!(
        "pbx_calls_live",
        "Calls in progress on this node's B2BUA (GET /api/v1/calls)"
    );
    metrics::describe_gauge!("pbx_webhook_backlog", "Webhook deliveries pending");
    metrics::describe_counter!(
        "pbx_sip_send_dropped_total",
        "SIP messages the transport dropped instead of waiting on a peer: transport=udp reason=would_block; transport=tcp reason=queue_full (the peer stopped reading; its connection is closed), connect_failed, too_many_connections"
    );
}
