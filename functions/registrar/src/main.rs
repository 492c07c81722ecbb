use ecs_control::aws::{ecs::EcsAdapter, elbv2::Elbv2Adapter, load_sdk_config};
use ecs_control::config::{flag_from_env, RegistrarConfig};
use ecs_control::invocation::fail_init;
use ecs_control::startup::StartupCheck;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use registrar::handler::{stop_at, Registrar};
use serde_json::Value;

// One thread: Lambda gives a function a share of one vCPU until 1,769 MB, and
// every wait here is I/O; a single-threaded runtime starts sooner and smaller.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    ecs_control::logging::init_logging();
    // A bad configuration stops the cold start, with the field to fix.
    let config = match RegistrarConfig::from_env() {
        Ok(config) => config,
        Err(e) => fail_init(&e).await,
    };
    let always_dry_run = match flag_from_env(registrar::DRY_RUN_ENV) {
        Ok(flag) => flag,
        Err(e) => fail_init(&e).await,
    };
    let sdk = match load_sdk_config() {
        Ok(sdk) => sdk,
        Err(e) => fail_init(&e).await,
    };
    let registrar = Registrar::new(
        config,
        EcsAdapter::new(aws_sdk_ecs::Client::new(&sdk)),
        Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&sdk)),
        always_dry_run,
    );
    // The target groups must be what the document says; checked with the
    // first event, before any event is acted on.
    let check = StartupCheck::default();
    let (registrar, check) = (&registrar, &check);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let _invocation = ecs_control::logging::InvocationLog::begin(&event.context);
        // Every AWS call of this invocation ends in time to answer.
        let _deadline = ecs_control::aws::deadline::InvocationDeadline::set(event.context.deadline);
        check.passed(|| registrar.verify_configuration()).await?;
        let deadline = stop_at(event.context.deadline(), std::time::SystemTime::now());
        registrar
            .invoke_before(event.payload, chrono::Utc::now, deadline)
            .await
    }))
    .await
}
