//! GraphQL errors: a code in `extensions.code`, a safe message, never driver text.

use async_graphql::ErrorExtensions;

use crate::store::StoreError;

/// Deliberately not `Display`: the only way out is `From<ApiError> for async_graphql::Error`,
/// which attaches `extensions.code`.
#[derive(Debug)]
pub enum ApiError {
    NotFound(&'static str),
    Validation { argument: String, message: String },
    Conflict(String),
    Unauthenticated,
    Forbidden,
    Internal(String),
}

impl ApiError {
    pub fn validation(argument: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation { argument: argument.into(), message: message.into() }
    }

    pub fn message(&self) -> String {
        match self {
            Self::NotFound(what) => format!("{what} not found"),
            Self::Validation { argument, message } => format!("invalid argument `{argument}`: {message}"),
            Self::Conflict(m) => format!("conflict: {m}"),
            Self::Unauthenticated => "authentication required".into(),
            Self::Forbidden => "not allowed".into(),
            Self::Internal(id) => format!("internal error (request id {id})"),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "NOT_FOUND",
            Self::Validation { .. } => "VALIDATION",
            Self::Conflict(_) => "CONFLICT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("customer"),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            other => internal(&other),
        }
    }
}

/// Log an internal error with its cause chain under a fresh request id; answer the id only.
pub fn internal(e: &(dyn std::error::Error + 'static)) -> ApiError {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut chain = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    tracing::error!(request_id = %id, error = %chain, "internal error");
    ApiError::Internal(id)
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        let code = e.code();
        let argument = match &e {
            ApiError::Validation { argument, .. } => Some(argument.clone()),
            _ => None,
        };
        async_graphql::Error::new(e.message()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(a) = argument {
                ext.set("argument", a);
            }
        })
    }
}

pub type ApiResult<T> = Result<T, async_graphql::Error>;
