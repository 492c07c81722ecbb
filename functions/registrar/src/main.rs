use ecs_control::aws::{ecs::EcsAdapter, elbv2::Elbv2Adapter, load_sdk_config};
use ecs_control::config::{flag_from_env, RegistrarConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use registrar::handler::Registrar;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // A bad configuration stops the cold start, with the field to fix in the log.
    let config = RegistrarConfig::from_env().inspect_err(|e| tracing::error!("{e}"))?;
    let always_dry_run =
        flag_from_env(registrar::DRY_RUN_ENV).inspect_err(|e| tracing::error!("{e}"))?;
    let sdk = load_sdk_config().await;
    let groups = Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&sdk));
    // The target groups must be what the document says: a mismatch stops the cold start too.
    registrar::cold_start::verify(&config, &groups)
        .await
        .inspect_err(|e| tracing::error!("{e}"))?;
    let registrar = Registrar::new(
        config,
        EcsAdapter::new(aws_sdk_ecs::Client::new(&sdk)),
        groups,
        always_dry_run,
    );
    let registrar = &registrar;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        registrar.handle(event.payload, chrono::Utc::now()).await
    }))
    .await
}
