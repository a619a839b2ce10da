//! Multi-row inserts written straight to SQL: the column values of each active model are
//! moved in order into the values of one statement text per row count, without building a
//! query tree per statement. Used where rows are written by the thousand (the bulk path).

use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityName, Iden, Iterable, Statement,
};

use super::shapes::{chunks_of, rows_per_statement};
use super::{push_tuple, StoreError, StoreResult};

/// What a multi-row insert does when a row breaks a constraint (other than one its
/// `ON CONFLICT` clause handles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnError {
    /// Undo the whole statement (SQL's default): SQLite keeps a statement journal for it.
    Abort,
    /// Stop, keeping the statement's earlier rows (`INSERT OR FAIL`, SQLite only): no
    /// statement journal, for a caller that rolls its whole transaction back on any error.
    Fail,
}

impl OnError {
    /// The statement's first words.
    pub(crate) fn verb(self) -> &'static str {
        match self {
            OnError::Abort => "INSERT",
            OnError::Fail => "INSERT OR FAIL",
        }
    }
}

/// Insert `rows` (every column set) into their table, `tail` appended to each statement
/// (an `ON CONFLICT …` clause, or empty).
pub(crate) async fn insert_rows<A>(txn: &DatabaseTransaction, rows: Vec<A>, tail: &str) -> StoreResult<()>
where
    A: ActiveModelTrait,
{
    for statement in insert_statements(txn.get_database_backend(), OnError::Abort, rows, tail)? {
        txn.execute(statement).await?;
    }
    Ok(())
}

/// The statements [`insert_rows`] runs, for a caller that sends them itself.
pub(crate) fn insert_statements<A>(
    b: DatabaseBackend,
    on_error: OnError,
    rows: Vec<A>,
    tail: &str,
) -> StoreResult<Vec<Statement>>
where
    A: ActiveModelTrait,
{
    build(b, on_error, rows.into_iter().map(|r| (r, None)).collect(), None, tail)
}

/// [`insert_statements`] for rows whose JSON column `json` is given as text already
/// serialised (and left unset in the model): a document serialised straight from its Rust
/// value skips the `serde_json::Value` tree that a model's JSON column needs, which the
/// bulk path built only to turn it into text again.
pub(crate) fn insert_statements_with_json_text<A>(
    b: DatabaseBackend,
    on_error: OnError,
    rows: Vec<(A, String)>,
    json: <A::Entity as sea_orm::EntityTrait>::Column,
    tail: &str,
) -> StoreResult<Vec<Statement>>
where
    A: ActiveModelTrait,
{
    build(b, on_error, rows.into_iter().map(|(r, text)| (r, Some(text))).collect(), Some(json), tail)
}

/// The multi-row inserts of `rows`; where a row comes with text, that text is bound for the
/// column `json` instead of the model's value.
fn build<A>(
    b: DatabaseBackend,
    on_error: OnError,
    rows: Vec<(A, Option<String>)>,
    json: Option<<A::Entity as sea_orm::EntityTrait>::Column>,
    tail: &str,
) -> StoreResult<Vec<Statement>>
where
    A: ActiveModelTrait,
{
    let mut out = Vec::new();
    if rows.is_empty() {
        return Ok(out);
    }
    let columns: Vec<<A::Entity as sea_orm::EntityTrait>::Column> =
        <<A::Entity as sea_orm::EntityTrait>::Column as Iterable>::iter().collect();
    let names: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.to_string())).collect();
    let json_at = json.map(|j| j.to_string()).and_then(|j| columns.iter().position(|c| c.to_string() == j));
    let table = A::Entity::default().table_name().to_string();
    let head = format!("{} INTO \"{table}\" ({}) VALUES ", on_error.verb(), names.join(", "));
    let width = columns.len();
    for chunk in chunks_of(rows, rows_per_statement(width)) {
        let mut sql = String::with_capacity(head.len() + chunk.len() * width * 5 + tail.len() + 1);
        sql.push_str(&head);
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * width);
        for (mut row, mut text) in chunk {
            // The row's JSON column is bound as text when the row comes with its text.
            let text_at = json_at.filter(|_| text.is_some());
            push_tuple(&mut sql, b, values.len(), width, |c| text_at == Some(c));
            for (c, col) in columns.iter().enumerate() {
                let value = match text.take_if(|_| text_at == Some(c)) {
                    Some(text) => sea_orm::Value::String(Some(Box::new(text))),
                    None => {
                        let value = row.take(*col).into_value().ok_or_else(|| {
                            StoreError::Corrupt(format!("{table}.{} not set on a bulk insert", col.to_string()))
                        })?;
                        as_bound(b, value)
                    }
                };
                values.push(value);
            }
        }
        if !tail.is_empty() {
            sql.push(' ');
            sql.push_str(tail);
        }
        out.push(Statement::from_sql_and_values(b, sql, values));
    }
    Ok(out)
}

/// `value` as it is bound on `b`: SQLite stores JSON as text, so a document is serialised
/// here, once, rather than deep-copied with the statement on its way to the driver, which
/// serialises it anyway.
fn as_bound(b: DatabaseBackend, value: sea_orm::Value) -> sea_orm::Value {
    match value {
        sea_orm::Value::Json(Some(doc)) if b == DatabaseBackend::Sqlite => {
            sea_orm::Value::String(Some(Box::new(doc.to_string())))
        }
        other => other,
    }
}
