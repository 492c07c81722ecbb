//! Secret values and where they are kept. A value read from a store prints as
//! `<redacted>` wherever it is formatted; a reference knows the name an IAM
//! policy matches, so one path can bound every reference a deployment makes.

use serde::{Serialize, Serializer};
use std::fmt;

/// What a secret shows instead of its value.
pub const REDACTED: &str = "<redacted>";

/// A secret's value. Only [`Secret::expose`] gives it out: `Debug` and
/// `Serialize` print `<redacted>`, and there is no `Display`, so a log line,
/// a record or an error message cannot carry it by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// Where a secret is kept: a Secrets Manager secret (its `SecretString`) or a
/// Parameter Store parameter (its value, decrypted). Built by the
/// constructors, which refuse what the store would not find.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretRef {
    SecretsManager(String),
    Parameter(String),
}

/// The most a secret's name or ARN, or a parameter's, may take (Parameter
/// Store's limit; Secrets Manager's names are shorter).
const MAX_ID: usize = 2048;

impl SecretRef {
    /// A Secrets Manager secret by name, or by its full ARN
    /// (`arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 characters>`).
    ///
    /// # Errors
    /// Says why `id` names no secret.
    pub fn secrets_manager(id: &str) -> Result<Self, String> {
        plain_id(id)?;
        if id.starts_with("arn:") && secret_arn_name(id).is_none() {
            return Err(format!(
                "{id:?} is not a full secret ARN (…:secret:<name>-<6 characters>): give the \
                 secret's name or its full ARN"
            ));
        }
        Ok(Self::SecretsManager(id.to_string()))
    }

    /// A Parameter Store parameter by name (`/ecs-control/probe/token`) or ARN.
    ///
    /// # Errors
    /// Says why `name` names no parameter.
    pub fn parameter(name: &str) -> Result<Self, String> {
        plain_id(name)?;
        if name.starts_with("arn:") && parameter_arn_name(name).is_none() {
            return Err(format!(
                "{name:?} is not a parameter ARN (…:parameter/<name>)"
            ));
        }
        Ok(Self::Parameter(name.to_string()))
    }

    /// The name or ARN as the store takes it.
    pub fn id(&self) -> &str {
        match self {
            Self::SecretsManager(id) | Self::Parameter(id) => id,
        }
    }

    /// The name an IAM resource pattern matches: a secret's name (an ARN's
    /// name part, without the six characters Secrets Manager appends), a
    /// parameter's name without its leading `/` (its ARN reads
    /// `…:parameter/<name>` either way).
    pub fn policy_name(&self) -> &str {
        match self {
            Self::SecretsManager(id) => secret_arn_name(id).unwrap_or(id),
            Self::Parameter(name) => parameter_arn_name(name)
                .unwrap_or(name)
                .trim_start_matches('/'),
        }
    }

    /// Whether the reference lies under `path` (`ecs-control/probe/`), the
    /// one pattern the function's IAM policy grants.
    pub fn lies_under(&self, path: &str) -> bool {
        self.policy_name().starts_with(path)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SecretsManager(id) => write!(f, "secretsmanager {id:?}"),
            Self::Parameter(name) => write!(f, "ssm {name:?}"),
        }
    }
}

fn plain_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID {
        return Err(format!("must be 1 to {MAX_ID} characters"));
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{id:?} has a space or control character"));
    }
    Ok(())
}

/// `<name>` of `arn:…:secret:<name>-<6 letters or digits>`.
fn secret_arn_name(arn: &str) -> Option<&str> {
    if arn.split(':').nth(2) != Some("secretsmanager") {
        return None;
    }
    let (_, resource) = arn.split_once(":secret:")?;
    let (name, suffix) = resource.rsplit_once('-')?;
    let suffixed = suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphanumeric());
    (suffixed && !name.is_empty()).then_some(name)
}

/// `<name>` of `arn:…:ssm:…:parameter/<name>`.
fn parameter_arn_name(arn: &str) -> Option<&str> {
    if arn.split(':').nth(2) != Some("ssm") {
        return None;
    }
    let (_, name) = arn.split_once(":parameter/")?;
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_its_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(
            format!("{:#?}", vec![secret.clone()]),
            "[\n    <redacted>,\n]"
        );
        assert_eq!(
            serde_json::to_string(&secret).ok().as_deref(),
            Some("\"<redacted>\"")
        );
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn the_policy_name_is_what_iam_matches() {
        let cases = [
            (SecretRef::secrets_manager("ecs-control/probe/api"), "ecs-control/probe/api"),
            (
                SecretRef::secrets_manager(
                    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecs-control/probe/api-AbC123",
                ),
                "ecs-control/probe/api",
            ),
            (SecretRef::parameter("/ecs-control/probe/token"), "ecs-control/probe/token"),
            (SecretRef::parameter("ecs-control/probe/token"), "ecs-control/probe/token"),
            (
                SecretRef::parameter("arn:aws:ssm:eu-west-1:123456789012:parameter/ecs-control/probe/token"),
                "ecs-control/probe/token",
            ),
        ];
        for (reference, name) in cases {
            let reference = reference.expect("valid");
            assert_eq!(reference.policy_name(), name, "{reference}");
            assert!(reference.lies_under("ecs-control/probe/"), "{reference}");
            assert!(!reference.lies_under("ecs-control/other/"), "{reference}");
        }
    }

    #[test]
    fn a_suffix_in_the_name_does_not_count_toward_the_path() {
        // The ARN of secret "ecs-control/probe" ends "probe-AbC123": it is not under "ecs-control/probe-".
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecs-control/probe-AbC123";
        let reference = SecretRef::secrets_manager(arn).expect("valid");
        assert!(!reference.lies_under("ecs-control/probe-"));
    }

    #[test]
    fn references_the_store_would_not_find_are_refused() {
        for bad in [
            "",
            "has space",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:nosuffix",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:short-AbC12",
            "arn:aws:ssm:eu-west-1:123456789012:parameter/x-AbC123",
        ] {
            assert!(SecretRef::secrets_manager(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "",
            "a\nb",
            "arn:aws:secretsmanager:eu-west-1:1:secret:x-AbC123",
        ] {
            assert!(SecretRef::parameter(bad).is_err(), "{bad:?}");
        }
    }
}
