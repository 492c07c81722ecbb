use drill::handler::Driller;
use ecs_control::aws::cloudwatch::{CloudWatchAlarms, CloudWatchMetrics};
use ecs_control::aws::{ecs::EcsAdapter, elbv2::Elbv2Adapter, load_sdk_config};
use ecs_control::config::{DrillConfig, RegistrarConfig};
use ecs_control::invocation::fail_init;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use probe::http::HttpAdapter;
use serde_json::Value;

// One thread: Lambda gives a function a share of one vCPU until 1,769 MB, and
// every wait here is I/O; a single-threaded runtime starts sooner and smaller.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    ecs_control::logging::init_logging();
    // A bad drill document stops the cold start, before anything is touched.
    let config = match DrillConfig::from_env() {
        Ok(config) => config,
        Err(e) => fail_init(&e).await,
    };
    // The scaler's bounds give each drilled service its floor and ceiling.
    let bounds = match config.scaler_bounds() {
        Ok(bounds) => bounds,
        Err(e) => fail_init(&e).await,
    };
    let sdk = match load_sdk_config() {
        Ok(sdk) => sdk,
        Err(e) => fail_init(&e).await,
    };
    let driller = Driller::new(
        config,
        EcsAdapter::new(aws_sdk_ecs::Client::new(&sdk)),
        Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&sdk)),
        CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&sdk)),
        HttpAdapter::new(),
        CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(&sdk)),
    )
    .with_capacity_bounds(bounds);
    // The registrar's groups, where the deployment ships its document: what
    // a graceful stop_tasks drill drains its tasks from.
    let driller = match RegistrarConfig::from_env_if_set()
        .and_then(|registrar| driller.with_target_bindings(registrar.as_ref()))
    {
        Ok(driller) => driller,
        Err(e) => fail_init(&e).await,
    };
    let driller = &driller;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let _invocation = ecs_control::logging::InvocationLog::begin(&event.context);
        // Every AWS call of this invocation ends in time to answer.
        let _deadline = ecs_control::aws::deadline::InvocationDeadline::set(event.context.deadline);
        let end = i64::try_from(event.context.deadline)
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis);
        driller
            .handle_request(event.payload, end, Some(&event.context.request_id))
            .await
    }))
    .await
}
