//! Errors as users see them: SQLSTATE, a message naming the object, and a hint saying how
//! to fix it. Raising one aborts the statement, so nothing it wrote survives.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(Debug, Clone)]
pub struct CrmError {
    code: PgSqlErrorCode,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
    /// For a refusal: the table (or "conversations", "events") and action it was about, and
    /// why, for the denial log; the message stands in for what is not given.
    about: Option<(Option<String>, Option<String>, Option<String>)>,
}

/// A name as error messages show it: at most 80 characters, control characters escaped, so
/// that a hostile name cannot flood or forge a log line.
pub fn shown(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().take(80) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if name.chars().count() > 80 {
        out.push('…');
    }
    out
}

impl CrmError {
    fn new(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        CrmError { code, message: message.into(), detail: None, hint: None, about: None }
    }

    /// A write by someone who cannot act (no identity, unknown or disabled user); `what` is
    /// "table leads", "conversations".
    pub fn cannot_act(reason: &crm_model::Reason, action: crm_model::Action, what: &str) -> Self {
        CrmError::denied(format!("{reason}: {action} on {what} is refused"))
            .with_hint("Connect as a login mapped with crm.map_db_role(), or from a trusted role run crm.set_user() or SET LOCAL crm.user_name.")
            .about(Some(what.strip_prefix("table ").unwrap_or(what)), Some(&action.to_string()), Some(&reason.to_string()))
    }

    /// What a refusal was about, for the denial log (`session::denials`).
    pub fn about(mut self, table: Option<&str>, action: Option<&str>, reason: Option<&str>) -> Self {
        self.about = Some((table.map(str::to_string), action.map(str::to_string), reason.map(str::to_string)));
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// `kind` is a CRM word ("role", "profile", "CRM user", "module").
    pub fn undefined(kind: &str, name: &str) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("{kind} \"{}\" does not exist", shown(name)))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, message)
    }

    pub fn duplicate(kind: &str, name: &str) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT, format!("{kind} \"{}\" already exists", shown(name)))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message)
    }

    /// A NULL where a value is required (the function is not strict, to say so).
    pub fn null_argument(name: &str) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED, format!("{name} must not be NULL"))
    }

    pub fn denied(message: impl Into<String>) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, message)
    }

    pub fn undefined_column(table: &str, column: &str) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN, format!("column \"{column}\" of table {table} does not exist"))
    }

    pub fn undefined_field(module: &str, field: &str) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN, format!("field \"{field}\" of module {module} does not exist"))
    }

    pub fn datatype_mismatch(message: impl Into<String>) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH, message)
    }

    /// The catalog cannot be compiled into a model (possible only through direct table
    /// writes, which bypass the API's validation). Enforcement fails closed on it.
    pub fn broken_catalog(problem: impl Into<String>) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "the CRM catalog is inconsistent")
            .with_detail(problem)
            .with_hint("Fix the crm.* tables; until then no protected row is visible and every write is refused.")
    }

    pub fn dependent(message: impl Into<String>) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST, message)
    }

    pub fn prerequisite(message: impl Into<String>) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, message)
    }

    pub fn not_supported(message: impl Into<String>) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, message)
    }

    /// Something this call read was changed by a transaction that committed while it ran.
    /// A bound of ours was reached (54000).
    pub fn limit(message: impl Into<String>) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED, message)
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE, message)
    }

    /// A plan made earlier in the transaction would run with decisions a catalog change,
    /// committed since, has overtaken (`session::plans`).
    pub fn catalog_changed() -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE, "the CRM catalog changed since this statement was planned")
            .with_detail("A change to users, roles, groups, sharing or permissions committed after this transaction planned the statement, whose plan holds the decisions made before it.")
            .with_hint("Run the statement again: it is planned anew under the current catalog.")
    }

    /// A plan made for another acting user, about to be reused where PostgreSQL asks us nothing
    /// first (a protocol-level Bind) with `crm.keep_user_plans` on (`session::plans`).
    pub fn acting_user_changed() -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE, "the acting CRM user changed since this statement was planned")
            .with_detail("crm.keep_user_plans is on: plans made for the previous transaction's acting user are kept until the next one asserts a user, and this statement ran before any was asserted.")
            .with_hint("Run the statement again: it is planned anew for the current acting user. Assert the user (SET LOCAL crm.user_name) first in every transaction, or turn crm.keep_user_plans off.")
    }

    /// A plan reused past the end of a grant its decisions hold (`session::expiry`).
    pub fn grant_ended() -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE, "a grant this statement's plan holds has ended")
            .with_detail("A permission set or record share with an end (until) counted when this transaction planned the statement, and has ended since.")
            .with_hint("Run the statement again: it is planned anew without the grant.")
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn raise(self) -> ! {
        if self.code == PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE {
            let (table, action, reason) = self.about.clone().unwrap_or_default();
            crate::session::denials::log(table.as_deref(), action.as_deref(), reason.as_deref().unwrap_or(&self.message));
        }
        let mut report = ErrorReport::new(self.code, self.message, "crm_access");
        if let Some(d) = self.detail {
            report = report.set_detail(d);
        }
        if let Some(h) = self.hint {
            report = report.set_hint(h);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }
}

pub type CrmResult<T> = Result<T, CrmError>;

/// An argument of an API function, which must not be NULL: the functions are not STRICT, so
/// that a NULL gets this error rather than a silent NULL result and nothing done.
pub fn required<T>(name: &str, value: Option<T>) -> T {
    value.unwrap_or_else(|| CrmError::null_argument(name).with_hint(format!("Pass a value for {name}.")).raise())
}

/// Raise the error, if any; the API's `#[pg_extern]` functions end with this.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for CrmResult<T> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| e.raise())
    }
}

impl From<pgrx::spi::SpiError> for CrmError {
    fn from(e: pgrx::spi::SpiError) -> Self {
        CrmError::new(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("catalog query failed: {e}"))
    }
}
