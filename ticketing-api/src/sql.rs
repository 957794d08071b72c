//! Small SQL helpers the domain modules share: a search box's text as an `ILIKE` pattern that
//! matches it literally, and one page of a list with the list's total.

use sqlx::{Encode, FromRow, PgPool, Postgres, Type, postgres::PgRow};

/// The pattern matching any text that contains `q` (case-insensitive with `ILIKE`): `q` is
/// text, so LIKE's wildcards (`%`, `_`) and its escape character in it are escaped.
pub fn contains(q: &str) -> String {
    format!(
        "%{}%",
        q.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// One page of a list and the list's length: `rows` selects the page (`$1` the filter, `$2`
/// the limit, `$3` the offset), `count` counts every row that passes the same filter (`$1`).
pub async fn page<T, F>(
    db: &PgPool,
    rows: &'static str,
    count: &'static str,
    filter: F,
    limit: i64,
    offset: i64,
) -> Result<(Vec<T>, i64), sqlx::Error>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    F: for<'q> Encode<'q, Postgres> + Type<Postgres> + Clone + Send + 'static,
{
    let items = sqlx::query_as::<_, T>(rows)
        .bind(filter.clone())
        .bind(limit)
        .bind(offset)
        .fetch_all(db)
        .await?;
    let (total,): (i64,) = sqlx::query_as(count).bind(filter).fetch_one(db).await?;
    Ok((items, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_in_the_query_are_text() {
        assert_eq!(contains("rock"), "%rock%");
        assert_eq!(contains("100%_off\\"), "%100\\%\\_off\\\\%");
    }
}
