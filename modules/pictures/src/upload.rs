//! Reading the uploaded file out of a `multipart/form-data` body while it streams in, never
//! holding more than the run-time limit (`max_single_file_size`) plus a little multipart
//! overhead, whatever the client sends or claims to send.
//!
//! The body is taken raw (`rocket::data::Data`) rather than through Rocket's `Form`: Rocket's
//! static `limits.file`/`limits.data-form` would answer with their own 413 before our run-time
//! limit is consulted, and a body that is not multipart would become a 415. Here every outcome
//! is one of FitTrackee's answers, checked in FitTrackee's order: "no file part", "no selected
//! file", "file extension not allowed", then the size.

use kernel::ApiError;
use rocket::data::{ByteUnit, Data};
use rocket::http::{ContentType, Status};
use rocket::request::{self, FromRequest, Request};

use crate::image::Format;
use crate::size;

pub const NO_FILE_PART: &str = "no file part";
pub const NO_SELECTED_FILE: &str = "no selected file";
pub const EXTENSION_NOT_ALLOWED: &str = "file extension not allowed";

/// Room for what surrounds the file in the body: boundaries, part headers, other small fields.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// The uploaded file: its format as its name promises it, and its bytes as sent.
#[derive(Debug)]
pub struct File {
    pub format: Format,
    pub bytes: Vec<u8>,
}

/// The headers that describe the body, read before the body itself.
pub struct BodyHeaders {
    content_type: Option<ContentType>,
    content_length: Option<u64>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for BodyHeaders {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        request::Outcome::Success(BodyHeaders {
            content_type: request.content_type().cloned(),
            content_length: request
                .headers()
                .get_one("Content-Length")
                .and_then(|n| n.trim().parse().ok()),
        })
    }
}

impl BodyHeaders {
    fn boundary(&self) -> Option<&str> {
        let content_type = self.content_type.as_ref()?;
        let is_form_data = content_type.top() == "multipart" && content_type.sub() == "form-data";
        is_form_data
            .then(|| content_type.param("boundary"))
            .flatten()
            .filter(|b| !b.is_empty())
    }
}

pub fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        Status::PayloadTooLarge,
        format!(
            "error during picture update: file size exceeds {}",
            size::readable(limit)
        ),
    )
}

/// Reads the first file part named `file`, refusing it as soon as it grows past `limit` bytes.
/// The rest of the body is never read.
pub async fn read(headers: &BodyHeaders, data: Data<'_>, limit: u64) -> Result<File, ApiError> {
    let boundary = headers
        .boundary()
        .ok_or_else(|| ApiError::bad_request(NO_FILE_PART))?;
    let cap = limit.saturating_add(MULTIPART_OVERHEAD);
    // A body announced as too big is refused before a byte of it is read.
    if headers.content_length.is_some_and(|n| n > cap) {
        return Err(too_large(limit));
    }
    // One byte past the cap, so that multer sees the excess and says so (at the cap exactly,
    // Rocket's stream would just end, and the body would look truncated).
    let stream = data.open(ByteUnit::from(cap.saturating_add(1)));
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(cap));
    let mut multipart =
        multer::Multipart::with_reader_with_constraints(stream, boundary, constraints);
    let refused = |e: multer::Error| match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large(limit)
        }
        // The body came too slowly (`connections.body_timeout`, `body_total`).
        multer::Error::StreamReadFailed(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(ApiError::is_timeout) =>
        {
            ApiError::request_timeout()
        }
        // Not multipart after all, or cut short: there is no file to speak of.
        _ => ApiError::bad_request(NO_FILE_PART),
    };
    loop {
        let mut field = match multipart.next_field().await.map_err(refused)? {
            Some(field) => field,
            None => return Err(ApiError::bad_request(NO_FILE_PART)),
        };
        // As Werkzeug sees it: a part without a file name is a form field, not a file.
        let Some(file_name) = field.file_name().filter(|_| field.name() == Some("file")) else {
            continue;
        };
        if file_name.is_empty() {
            return Err(ApiError::bad_request(NO_SELECTED_FILE));
        }
        // The name is only ever read for its extension: nothing is stored under it.
        let format = Format::from_file_name(file_name)
            .ok_or_else(|| ApiError::bad_request(EXTENSION_NOT_ALLOWED))?;
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(refused)? {
            if u64::try_from(bytes.len() + chunk.len()).unwrap_or(u64::MAX) > limit {
                return Err(too_large(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        return Ok(File { format, bytes });
    }
}
