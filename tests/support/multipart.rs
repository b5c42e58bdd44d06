//! `multipart/form-data` bodies, as browsers send them.

/// The boundary of the bodies `multipart` builds.
pub const BOUNDARY: &str = "------------------------stride7MA4YWxkTrZu0gW";

pub fn multipart_content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// One part of a `multipart/form-data` body.
pub struct Part<'a> {
    pub name: &'a str,
    /// `None`: a plain form field (no `filename` parameter).
    pub file_name: Option<&'a str>,
    pub content: &'a [u8],
}

/// A `multipart/form-data` body, as a browser sends it.
pub fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = multipart_parts(BOUNDARY, parts);
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The parts of a `multipart/form-data` body, without its closing line.
pub fn multipart_parts(boundary: &str, parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match part.file_name {
            Some(file) => format!(
                "Content-Disposition: form-data; name=\"{}\"; filename=\"{file}\"\r\n\
                 Content-Type: application/octet-stream\r\n",
                part.name
            ),
            None => format!("Content-Disposition: form-data; name=\"{}\"\r\n", part.name),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(part.content);
        body.extend_from_slice(b"\r\n");
    }
    body
}

/// A body with one file part named `file`.
pub fn file_body(file_name: &str, content: &[u8]) -> Vec<u8> {
    multipart(&[Part {
        name: "file",
        file_name: Some(file_name),
        content,
    }])
}
