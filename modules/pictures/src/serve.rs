//! Serving a picture: the stored bytes with their format, a strong ETag and a 304 for a client
//! that already holds them.
//!
//! - `Cache-Control: no-cache`: the URL stays the same when the picture changes, so a cache may
//!   keep the bytes but must ask again each time; the ETag makes that question cost a 304.
//! - `X-Content-Type-Options: nosniff` and `Content-Security-Policy: default-src 'none'`: the
//!   bytes are an image and only ever rendered as one, even if opened directly.

use std::io::Cursor;

use crate::store::Picture;
use rocket::http::{Header, Status};
use rocket::request::{self, FromRequest, Request};
use rocket::response::{self, Responder, Response};

use crate::image::Format;

/// The `If-None-Match` request header, if any.
pub struct IfNoneMatch(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for IfNoneMatch {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        let values: Vec<&str> = request.headers().get("If-None-Match").collect();
        request::Outcome::Success(IfNoneMatch((!values.is_empty()).then(|| values.join(","))))
    }
}

impl IfNoneMatch {
    /// Whether the client's copy is the one tagged `etag` (unquoted). `If-None-Match` compares
    /// weakly (RFC 9110 §13.1.2): `W/"x"` matches `"x"`; `*` matches any current picture.
    pub fn matches(&self, etag: &str) -> bool {
        let Some(header) = &self.0 else {
            return false;
        };
        header.split(',').map(str::trim).any(|tag| {
            tag == "*" || {
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                tag.strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .is_some_and(|t| t == etag)
            }
        })
    }
}

/// A picture answer: the image, or "you have it already".
pub enum Served {
    Image(Picture),
    NotModified { etag: String },
}

impl<'r> Responder<'r, 'static> for Served {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let (status, etag, body) = match self {
            Served::Image(picture) => {
                let media_type = Format::from_name(&picture.format)
                    .map_or("application/octet-stream", |f| f.media_type());
                (Status::Ok, picture.etag, Some((media_type, picture.data)))
            }
            Served::NotModified { etag } => (Status::NotModified, etag, None),
        };
        let mut response = Response::build();
        response
            .status(status)
            .header(Header::new("ETag", format!("\"{etag}\"")))
            .header(Header::new("Cache-Control", "no-cache"))
            .header(Header::new("X-Content-Type-Options", "nosniff"))
            .header(Header::new("Content-Security-Policy", "default-src 'none'"));
        if let Some((media_type, data)) = body {
            response
                .raw_header("Content-Type", media_type)
                .sized_body(data.len(), Cursor::new(data));
        }
        response.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::IfNoneMatch;

    #[test]
    fn if_none_match() {
        let header = |v: &str| IfNoneMatch(Some(v.to_owned()));
        assert!(header("\"abc\"").matches("abc"));
        assert!(header("W/\"abc\"").matches("abc"));
        assert!(header("\"x\", \"abc\"").matches("abc"));
        assert!(header("*").matches("abc"));
        assert!(!header("\"abcd\"").matches("abc"));
        assert!(!header("abc").matches("abc"));
        assert!(!IfNoneMatch(None).matches("abc"));
    }
}
