use ecs_control::aws::{
    cloudwatch::CloudWatchAlarms, ecs::EcsAdapter, elbv2::Elbv2Adapter, load_sdk_config,
};
use ecs_control::config::{flag_from_env, RegistrarConfig, ScalerConfig};
use ecs_control::invocation::fail_init;
use ecs_control::startup::StartupCheck;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use scaler::handler::Scaler;
use serde_json::Value;

// One thread: Lambda gives a function a share of one vCPU until 1,769 MB, and
// every wait here is I/O; a single-threaded runtime starts sooner and smaller.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    ecs_control::logging::init_logging();
    // A bad configuration stops the cold start, with the field to fix.
    let config = match ScalerConfig::from_env() {
        Ok(config) => config,
        Err(e) => fail_init(&e).await,
    };
    // Where the deployment ships the registrar's document, a scale-in drains
    // the tasks it removes from the registrar's target groups first.
    let registrar = match RegistrarConfig::from_env_if_set() {
        Ok(registrar) => registrar,
        Err(e) => fail_init(&e).await,
    };
    let always_dry_run = match flag_from_env(scaler::DRY_RUN_ENV) {
        Ok(flag) => flag,
        Err(e) => fail_init(&e).await,
    };
    let sdk = match load_sdk_config() {
        Ok(sdk) => sdk,
        Err(e) => fail_init(&e).await,
    };
    let ecs = EcsAdapter::new(aws_sdk_ecs::Client::new(&sdk));
    let alarms = CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&sdk));
    let groups = registrar
        .as_ref()
        .map(|_| Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&sdk)));
    let scaler = match Scaler::new(config, ecs, alarms, always_dry_run)
        .with_target_groups(groups, registrar.as_ref())
    {
        Ok(scaler) => scaler,
        Err(e) => fail_init(&e).await,
    };
    // What the policies name must exist; checked with the first event,
    // before any event is acted on.
    let check = StartupCheck::default();
    let (scaler, check) = (&scaler, &check);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let _invocation = ecs_control::logging::InvocationLog::begin(&event.context);
        // Every AWS call of this invocation ends in time to answer.
        let _deadline = ecs_control::aws::deadline::InvocationDeadline::set(event.context.deadline);
        check.passed(|| scaler.verify_configuration()).await?;
        scaler
            .invoke(event.payload, &event.context.request_id, chrono::Utc::now)
            .await
    }))
    .await
}
