//! `postgres://` locations: the connection URL, the schema the store's tables live in, and a
//! form to print that never shows the password.

use std::fmt;

/// Schema used when the URL names none.
pub const DEFAULT_SCHEMA: &str = "clipkit";

/// A PostgreSQL store's location: `postgres://[user[:password]@]host[:port]/db[?schema=NAME]`
/// (also `postgresql://`). Other query parameters (`sslmode`, `connect_timeout`, …) are
/// passed to the client. `Display` and `Debug` leave the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct PgLocation {
    /// The URL the client connects with (`schema` removed), password included.
    url: String,
    /// The schema holding the store's tables.
    schema: String,
}

impl PgLocation {
    /// Parses a `postgres://` or `postgresql://` URL; `Err` says what is wrong, without the
    /// password.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (base, query) = match text.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (text, None),
        };
        let mut schema = DEFAULT_SCHEMA.to_string();
        let mut kept = Vec::new();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some(("schema", name)) => schema = name.to_string(),
                _ => kept.push(pair),
            }
        }
        if !is_plain_identifier(&schema) {
            return Err(format!(
                "schema {schema:?}: use lower-case letters, digits and _ (at most 63, not \
                 starting with a digit)"
            ));
        }
        let url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        url.parse::<postgres::Config>()
            .map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
        Ok(PgLocation { url, schema })
    }

    /// The URL to connect with (holds the password, if any: never print it).
    pub fn connect_url(&self) -> &str {
        &self.url
    }

    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

/// `[a-z_][a-z0-9_]{0,62}`: needs no quoting and cannot inject SQL.
fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// `url` with the password of its user part, if any, replaced by nothing.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(u, _)| u);
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

impl fmt::Display for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = redacted(&self.url);
        let sep = if url.contains('?') { '&' } else { '?' };
        write!(f, "{url}{sep}schema={}", self.schema)
    }
}

impl fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgLocation({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        let loc =
            PgLocation::parse("postgres://ann:s3cret@db.example:5433/photos?schema=team").unwrap();
        assert_eq!(loc.schema(), "team");
        assert_eq!(
            loc.connect_url(),
            "postgres://ann:s3cret@db.example:5433/photos"
        );
        let shown = format!("{loc} {loc:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("postgres://ann@db.example:5433/photos?schema=team"));
    }

    #[test]
    fn the_schema_defaults_and_other_parameters_stay() {
        let loc = PgLocation::parse("postgresql://h/db?sslmode=disable").unwrap();
        assert_eq!(loc.schema(), DEFAULT_SCHEMA);
        assert_eq!(loc.connect_url(), "postgresql://h/db?sslmode=disable");
        assert_eq!(
            loc.to_string(),
            "postgresql://h/db?sslmode=disable&schema=clipkit"
        );
    }

    #[test]
    fn a_schema_that_would_need_quoting_is_refused() {
        for bad in ["x;drop", "Upper", "1st", ""] {
            let err = PgLocation::parse(&format!("postgres://h/db?schema={bad}")).unwrap_err();
            assert!(err.contains("schema"), "{err}");
        }
        let err = PgLocation::parse("postgres://u:pw@h/db?nonsense=1").unwrap_err();
        assert!(!err.contains("pw"), "{err}");
    }
}
