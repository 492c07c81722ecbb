use ecs_control::aws::{cloudwatch::CloudWatchAlarms, ecs::EcsAdapter, load_sdk_config};
use ecs_control::config::{flag_from_env, ScalerConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use scaler::handler::Scaler;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // A bad configuration stops the cold start, with the field to fix in the log.
    let config = ScalerConfig::from_env().inspect_err(|e| tracing::error!("{e}"))?;
    let always_dry_run =
        flag_from_env(scaler::DRY_RUN_ENV).inspect_err(|e| tracing::error!("{e}"))?;
    let sdk = load_sdk_config().await;
    let ecs = EcsAdapter::new(aws_sdk_ecs::Client::new(&sdk));
    let alarms = CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&sdk));
    // What the policies name must exist: a mismatch stops the cold start too.
    scaler::cold_start::verify(&config, &alarms, &ecs)
        .await
        .inspect_err(|e| tracing::error!("{e}"))?;
    let scaler = Scaler::new(config, ecs, alarms, always_dry_run);
    let scaler = &scaler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        scaler
            .handle(event.payload, &event.context.request_id, chrono::Utc::now())
            .await
    }))
    .await
}
