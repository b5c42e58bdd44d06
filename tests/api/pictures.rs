//! Users' pictures: upload (multipart, field `file`), replace, delete, serve with ETag.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::{AnimationDecoder, DynamicImage, Frame, ImageFormat, Rgba, RgbaImage};
use serde_json::json;

use crate::helpers::{
    each_backend, file_body, gradient, multipart, multipart_content_type, noise_png, png, Part,
    RawReply, TestApp,
};

const UPDATED: &str = "user picture updated";
const TOO_LARGE_1MB: &str = "error during picture update: file size exceeds 1.0MB";

// ---- test pictures -------------------------------------------------------------------------

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 95)
        .encode_image(&gradient(width, height))
        .expect("jpeg");
    out
}

/// Two frames: red, then blue.
fn animated_gif(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut out);
        encoder.set_repeat(Repeat::Infinite).expect("repeat");
        for colour in [[255, 0, 0, 255], [0, 0, 255, 255]] {
            let frame = RgbaImage::from_pixel(width, height, Rgba(colour));
            encoder.encode_frame(Frame::new(frame)).expect("frame");
        }
    }
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = u32::try_from(data.len())
        .expect("small")
        .to_be_bytes()
        .to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let mut covered = kind.to_vec();
    covered.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&covered).to_be_bytes());
    chunk
}

/// Inserts a chunk right after IHDR (8 bytes of signature + 25 of IHDR).
fn with_png_chunk(png: &[u8], kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = png[..33].to_vec();
    out.extend_from_slice(&png_chunk(kind, data));
    out.extend_from_slice(&png[33..]);
    out
}

/// A PNG that claims `width`×`height` pixels in a few dozen bytes.
fn png_claiming(width: u32, height: u32, bit_depth: u8, colour_type: u8) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[bit_depth, colour_type, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&png_chunk(b"IHDR", &ihdr));
    // A valid zlib stream of nothing: the decoder never gets that far.
    out.extend_from_slice(&png_chunk(
        b"IDAT",
        &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    out.extend_from_slice(&png_chunk(b"IEND", &[]));
    out
}

const GPS_SECRET: &[u8] = b"STRIDE-SECRET-GPS-48.8584N-2.2945E";

/// An Exif (TIFF) block: IFD0 with an orientation and a GPS IFD pointer, a GPS IFD with a
/// latitude, and a marker string to look for in what the server gives back.
fn exif(orientation: u16) -> Vec<u8> {
    let mut t = b"MM\x00\x2A".to_vec();
    t.extend_from_slice(&8u32.to_be_bytes());
    // IFD0 at 8: two entries, then the next-IFD offset; it ends at 38.
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]);
    t.extend_from_slice(&orientation.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&[0x88, 0x25, 0, 4, 0, 0, 0, 1]);
    t.extend_from_slice(&38u32.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    // GPS IFD at 38: latitude ref "N" and latitude (3 rationals at 68).
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&[0x00, 0x01, 0, 2, 0, 0, 0, 2, b'N', 0, 0, 0]);
    t.extend_from_slice(&[0x00, 0x02, 0, 5, 0, 0, 0, 3]);
    t.extend_from_slice(&68u32.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    for (num, den) in [(48u32, 1u32), (51, 1), (29, 1)] {
        t.extend_from_slice(&num.to_be_bytes());
        t.extend_from_slice(&den.to_be_bytes());
    }
    t.extend_from_slice(GPS_SECRET);
    t
}

/// A JPEG with an APP1 Exif segment after its APP0.
fn jpeg_with_exif(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut segment = b"Exif\0\0".to_vec();
    segment.extend_from_slice(&exif(orientation));
    let length = u16::try_from(segment.len() + 2).expect("small");
    let app0_end = if jpeg[2..4] == [0xFF, 0xE0] {
        4 + usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]))
    } else {
        2
    };
    let mut out = jpeg[..app0_end].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[app0_end..]);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn decode(reply: &RawReply) -> DynamicImage {
    image::load_from_memory(&reply.body).expect("the server answers an image")
}

// ---- helpers for these tests -----------------------------------------------------------------

#[track_caller]
fn assert_image(reply: &RawReply, media_type: &str) {
    assert_eq!(
        reply.status.code,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("Content-Type"), media_type);
    let etag = reply.header("ETag");
    assert!(
        etag.len() == 66
            && etag.starts_with('"')
            && etag.ends_with('"')
            && etag[1..65].bytes().all(|b| b.is_ascii_hexdigit()),
        "strong ETag: {etag}"
    );
    assert_eq!(reply.header("Cache-Control"), "no-cache");
    assert_eq!(reply.header("X-Content-Type-Options"), "nosniff");
    assert_eq!(
        reply.header("Content-Security-Policy"),
        "default-src 'none'"
    );
}

fn modified(path: &str) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn files_in(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("a readable folder")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    names.sort();
    names
}

/// The folder of a SQLite test database.
fn sqlite_dir(app: &TestApp) -> Option<PathBuf> {
    let file = app.db.url.strip_prefix("sqlite://")?.split('?').next()?;
    Path::new(file).parent().map(Path::to_owned)
}

async fn upload_raw(
    app: &TestApp,
    token: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> crate::helpers::Reply {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    if let Some(content_type) = content_type {
        headers.push(("Content-Type", content_type));
    }
    app.raw("POST", "/api/auth/picture", &headers, Some(body))
        .await
        .json()
}

async fn set_limit(app: &TestApp, admin: &str, bytes: i64) {
    let reply = app
        .send(
            "PATCH",
            "/api/config",
            Some(admin),
            Some(&json!({"max_single_file_size": bytes}).to_string()),
        )
        .await;
    assert_eq!(reply.status.code, 200, "{}", reply.body);
}

each_backend! {
    async fn every_format_is_stored_and_served(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        assert_eq!(app.profile(&token).await.body["data"]["picture"], false);
        for (name, content, media_type, format) in [
            ("me.png", png(5, 3), "image/png", ImageFormat::Png),
            ("ME.PNG", png(6, 3), "image/png", ImageFormat::Png),
            ("me.jpg", jpeg(7, 3), "image/jpeg", ImageFormat::Jpeg),
            ("me.jpeg", jpeg(8, 3), "image/jpeg", ImageFormat::Jpeg),
            ("Me.JpEg", jpeg(9, 3), "image/jpeg", ImageFormat::Jpeg),
            ("me.gif", animated_gif(10, 3), "image/gif", ImageFormat::Gif),
            ("me.GIF", animated_gif(11, 3), "image/gif", ImageFormat::Gif),
        ] {
            app.upload_picture(&token, name, &content).await.assert_success(200, UPDATED);
            let served = app.picture("sam", &[]).await;
            assert_image(&served, media_type);
            assert_eq!(image::guess_format(&served.body).expect("a format"), format, "{name}");
            let width = decode(&served).width();
            assert_eq!((width, decode(&served).height()), (width, 3), "{name}");
            assert_eq!(app.profile(&token).await.body["data"]["picture"], true);
        }
        // Usernames are case-insensitive here as everywhere.
        assert_eq!(app.picture("SAM", &[]).await.status.code, 200);
    }

    async fn pixels_survive_the_round_trip(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        app.upload_picture(&token, "me.png", &png(16, 9)).await.assert_success(200, UPDATED);
        let served = decode(&app.picture("sam", &[]).await).to_rgb8();
        assert_eq!(served, gradient(16, 9));
    }

    async fn an_animated_gif_keeps_its_first_frame(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        app.upload_picture(&token, "dance.gif", &animated_gif(8, 8)).await.assert_success(200, UPDATED);
        let served = app.picture("sam", &[]).await;
        assert_image(&served, "image/gif");
        let frames = GifDecoder::new(Cursor::new(&served.body))
            .expect("a GIF")
            .into_frames()
            .collect_frames()
            .expect("frames");
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].buffer().get_pixel(3, 3), &Rgba([255, 0, 0, 255]));
    }

    async fn a_second_upload_replaces_the_first(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        app.upload_picture(&token, "one.png", &png(4, 4)).await.assert_success(200, UPDATED);
        let first = app.picture("sam", &[]).await;
        assert_image(&first, "image/png");
        app.upload_picture(&token, "two.jpg", &jpeg(4, 4)).await.assert_success(200, UPDATED);
        let second = app.picture("sam", &[]).await;
        assert_image(&second, "image/jpeg");
        assert_ne!(first.header("ETag"), second.header("ETag"));
        assert_ne!(first.body, second.body);
        // The old tag no longer matches: the new picture comes back in full.
        let again = app.picture("sam", &[("If-None-Match", first.header("ETag"))]).await;
        assert_eq!(again.status.code, 200);
        assert_eq!(again.body, second.body);
        // Same picture again: same bytes, same tag.
        app.upload_picture(&token, "two.jpg", &jpeg(4, 4)).await.assert_success(200, UPDATED);
        assert_eq!(app.picture("sam", &[]).await.header("ETag"), second.header("ETag"));
    }

    async fn delete(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let bearer = format!("Bearer {token}");
        // Nothing to delete: still 204.
        let none = app.raw("DELETE", "/api/auth/picture", &[("Authorization", &bearer)], None).await;
        assert_eq!((none.status.code, none.body.len()), (204, 0));
        app.upload_picture(&token, "me.png", &png(4, 4)).await.assert_success(200, UPDATED);
        assert_eq!(app.profile(&token).await.body["data"]["picture"], true);
        let deleted = app.raw("DELETE", "/api/auth/picture", &[("Authorization", &bearer)], None).await;
        assert_eq!((deleted.status.code, deleted.body.len()), (204, 0));
        app.picture("sam", &[]).await.json().assert_error(404, "no picture");
        assert_eq!(app.profile(&token).await.body["data"]["picture"], false);
        let again = app.raw("DELETE", "/api/auth/picture", &[("Authorization", &bearer)], None).await;
        assert_eq!(again.status.code, 204);
        // Only the owner's own picture, and only with a token.
        app.raw("DELETE", "/api/auth/picture", &[], None).await.json()
            .assert_error(401, "provide a valid auth token");
    }

    async fn one_user_does_not_touch_another(backend) {
        let app = TestApp::new(&backend).await;
        let sam = app.register("sam").await;
        let kim = app.register("kim").await;
        app.upload_picture(&sam, "sam.png", &png(4, 4)).await.assert_success(200, UPDATED);
        app.picture("kim", &[]).await.json().assert_error(404, "no picture");
        assert_eq!(app.profile(&kim).await.body["data"]["picture"], false);
        let bearer = format!("Bearer {kim}");
        app.raw("DELETE", "/api/auth/picture", &[("Authorization", &bearer)], None).await;
        assert_eq!(app.picture("sam", &[]).await.status.code, 200);
    }

    async fn not_found(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        app.picture("nobody", &[]).await.json().assert_error(404, "user does not exist");
        app.picture("sam", &[]).await.json().assert_error(404, "no picture");
    }

    async fn conditional_get(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        app.upload_picture(&token, "me.png", &png(4, 4)).await.assert_success(200, UPDATED);
        let full = app.picture("sam", &[]).await;
        let etag = full.header("ETag").to_owned();
        for header in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}"), "*".to_owned()] {
            let cached = app.picture("sam", &[("If-None-Match", &header)]).await;
            assert_eq!(cached.status.code, 304, "{header}");
            assert!(cached.body.is_empty());
            assert_eq!(cached.header("ETag"), etag);
            assert_eq!(cached.header("Cache-Control"), "no-cache");
        }
        let stale = app.picture("sam", &[("If-None-Match", "\"0123\"")]).await;
        assert_eq!(stale.status.code, 200);
        assert_eq!(stale.body, full.body);
    }

    async fn metadata_is_stripped(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;

        // A PNG with an eXIf chunk (GPS position inside) and a text chunk.
        let tagged = with_png_chunk(&png(6, 4), b"eXIf", &exif(1));
        let tagged = with_png_chunk(&tagged, b"tEXt", b"Comment\0STRIDE-SECRET-COMMENT");
        assert!(contains(&tagged, GPS_SECRET));
        app.upload_picture(&token, "me.png", &tagged).await.assert_success(200, UPDATED);
        let served = app.picture("sam", &[]).await;
        assert_image(&served, "image/png");
        for marker in [GPS_SECRET, b"eXIf", b"tEXt", b"STRIDE-SECRET-COMMENT"] {
            assert!(!contains(&served.body, marker), "{}", String::from_utf8_lossy(marker));
        }
        assert_eq!(decode(&served).to_rgb8(), gradient(6, 4));

        // A JPEG with an APP1 Exif segment: GPS gone, and its orientation (6: rotate 90° clockwise)
        // applied to the pixels, so the 6×4 photo comes back upright, 4×6.
        let photo = jpeg_with_exif(&jpeg(6, 4), 6);
        assert!(contains(&photo, GPS_SECRET) && contains(&photo, b"Exif\0\0"));
        app.upload_picture(&token, "photo.jpg", &photo).await.assert_success(200, UPDATED);
        let served = app.picture("sam", &[]).await;
        assert_image(&served, "image/jpeg");
        for marker in [GPS_SECRET, b"Exif\0\0"] {
            assert!(!contains(&served.body, marker), "{}", String::from_utf8_lossy(marker));
        }
        let image = decode(&served);
        assert_eq!((image.width(), image.height()), (4, 6));
    }

    async fn a_file_name_is_only_an_extension(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let passwd = modified("/etc/passwd");
        let tmp_x = Path::new("/tmp/x.png").exists();
        let (cwd, db_dir) = (files_in(Path::new(".")), sqlite_dir(&app).map(|d| files_in(&d)));
        for name in ["../../etc/passwd.png", "/tmp/x.png", "..\\..\\win.png", "a%22b.png", "%2e%2e%2fx.png"] {
            app.upload_picture(&token, name, &png(3, 3)).await.assert_success(200, UPDATED);
        }
        assert_eq!(app.picture("sam", &[]).await.status.code, 200);
        // Nothing was written by name: not where the names point, not next to the tests, not
        // beside the database.
        assert_eq!(modified("/etc/passwd"), passwd);
        assert_eq!(Path::new("/tmp/x.png").exists(), tmp_x);
        assert_eq!(files_in(Path::new(".")), cwd);
        assert_eq!(sqlite_dir(&app).map(|d| files_in(&d)), db_dir);
    }

    async fn refusals(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;

        // No `file` part: another field, a `file` field that is not a file, or nothing at all.
        let other = multipart(&[Part { name: "picture", file_name: Some("me.png"), content: &png(2, 2) }]);
        app.upload_body(&token, other).await.assert_error(400, "no file part");
        let plain = multipart(&[Part { name: "file", file_name: None, content: &png(2, 2) }]);
        app.upload_body(&token, plain).await.assert_error(400, "no file part");
        app.upload_body(&token, multipart(&[])).await.assert_error(400, "no file part");
        app.upload_body(&token, b"garbage".to_vec()).await.assert_error(400, "no file part");

        app.upload_picture(&token, "", &png(2, 2)).await.assert_error(400, "no selected file");

        for name in ["me.svg", "me.txt", "me", "me.png.html", "me.webp", "me.", ".png.exe"] {
            app.upload_picture(&token, name, &png(2, 2)).await
                .assert_error(400, "file extension not allowed");
        }
        // The content must be the image the name promises.
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>"#;
        let html = b"<html><script>alert(document.cookie)</script></html>";
        for (name, content) in [
            ("me.png", svg.to_vec()),
            ("me.png", html.to_vec()),
            ("me.gif", html.to_vec()),
            ("me.jpg", Vec::new()),
            ("me.png", b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script>".to_vec()),
            ("me.gif", b"GIF89a\x02\x00\x02\x00\x00\x00\x00<script>alert(1)</script>".to_vec()),
            ("me.jpg", png(2, 2)),
            ("me.png", jpeg(2, 2)),
            ("me.png", png(8, 8)[..60].to_vec()),
        ] {
            app.upload_picture(&token, name, &content).await
                .assert_error(400, "file extension not allowed");
        }
        // None of it was stored.
        app.picture("sam", &[]).await.json().assert_error(404, "no picture");
        // Refusals need a token first.
        let anonymous = app.raw("POST", "/api/auth/picture", &[("Content-Type", &multipart_content_type())],
            Some(file_body("me.png", &png(2, 2)))).await.json();
        anonymous.assert_error(401, "provide a valid auth token");
    }

    async fn a_body_that_is_not_multipart(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        for (content_type, body) in [
            (Some("application/json"), br#"{"file": "me.png"}"#.to_vec()),
            (Some("text/plain"), b"hello".to_vec()),
            (Some("image/png"), png(2, 2)),
            (Some("application/x-www-form-urlencoded"), b"file=me.png".to_vec()),
            (Some("multipart/form-data"), file_body("me.png", &png(2, 2))),
            (Some("multipart/mixed; boundary=x"), b"--x--".to_vec()),
            (None, png(2, 2)),
            (None, Vec::new()),
        ] {
            upload_raw(&app, &token, content_type, body).await.assert_error(400, "no file part");
        }
    }

    async fn decompression_bombs_are_refused_cheaply(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let started = Instant::now();
        // 50000×50000 pixels claimed in 60 bytes.
        let bomb = png_claiming(50_000, 50_000, 8, 2);
        assert!(bomb.len() < 100);
        app.upload_picture(&token, "bomb.png", &bomb).await
            .assert_error(400, "image too large: at most 8192x8192 pixels");
        // Within the sides, but 8000×8000 RGBA at 16 bits is 512 MB once decoded.
        app.upload_picture(&token, "bomb.png", &png_claiming(8000, 8000, 16, 6)).await
            .assert_error(400, "image too large: more than 128.0MB once decoded");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        app.picture("sam", &[]).await.json().assert_error(404, "no picture");
    }

    async fn the_size_limit(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        // One byte over the limit: 413, whatever the content.
        let over = vec![0u8; 1024 * 1024 + 1];
        app.upload_picture(&token, "big.png", &over).await.assert_error(413, TOO_LARGE_1MB);
        // Exactly the limit is allowed through to the content check.
        let mut at_limit = b"\x89PNG\r\n\x1a\n".to_vec();
        at_limit.resize(1024 * 1024, 0);
        app.upload_picture(&token, "big.png", &at_limit).await
            .assert_error(400, "file extension not allowed");
        // Far over, and the body is not read to its end.
        app.upload_picture(&token, "huge.png", &vec![0u8; 8 * 1024 * 1024]).await
            .assert_error(413, TOO_LARGE_1MB);
        // The checks come in FitTrackee's order: name, extension, then size.
        app.upload_picture(&token, "", &over).await.assert_error(400, "no selected file");
        app.upload_picture(&token, "big.txt", &over).await.assert_error(400, "file extension not allowed");
    }

    async fn the_limit_is_the_run_time_setting(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let admin = app.admin("admin").await;
        let picture = noise_png(40, 40);
        assert!(picture.len() > 2048, "{}", picture.len());
        app.upload_picture(&token, "me.png", &picture).await.assert_success(200, UPDATED);

        set_limit(&app, &admin, 2048).await;
        app.upload_picture(&token, "me.png", &picture).await
            .assert_error(413, "error during picture update: file size exceeds 2.0KB");
        set_limit(&app, &admin, 1536).await;
        app.upload_picture(&token, "me.png", &picture).await
            .assert_error(413, "error during picture update: file size exceeds 1.5KB");
        set_limit(&app, &admin, 512).await;
        app.upload_picture(&token, "me.png", &picture).await
            .assert_error(413, "error during picture update: file size exceeds 512.0 bytes");
        // Small pictures still pass.
        app.upload_picture(&token, "dot.gif", &animated_gif(1, 1)).await.assert_success(200, UPDATED);

        // Whatever precedes the file counts too: a body far larger than the limit is refused
        // even when the file itself is small.
        let padded = multipart(&[
            Part { name: "padding", file_name: None, content: &vec![b'x'; 200 * 1024] },
            Part { name: "file", file_name: Some("dot.gif"), content: &animated_gif(1, 1) },
        ]);
        app.upload_body(&token, padded).await
            .assert_error(413, "error during picture update: file size exceeds 512.0 bytes");

        // Back up: a larger picture passes again (a setting, not a restart).
        set_limit(&app, &admin, 10 * 1024 * 1024).await;
        app.upload_picture(&token, "me.png", &png(300, 300)).await.assert_success(200, UPDATED);
    }

    async fn module_off(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("modules.pictures", false))).await;
        let token = app.register("sam").await;
        let bearer = format!("Bearer {token}");
        let content_type = multipart_content_type();
        let headers = [("Authorization", bearer.as_str()), ("Content-Type", content_type.as_str())];
        let body = file_body("me.png", &png(2, 2));
        app.raw("POST", "/api/auth/picture", &headers, Some(body)).await.json()
            .assert_error(404, "error, page not found");
        app.raw("DELETE", "/api/auth/picture", &[("Authorization", &bearer)], None).await.json()
            .assert_error(404, "error, page not found");
        app.picture("sam", &[]).await.json().assert_error(404, "error, page not found");
        let profile = app.profile(&token).await;
        assert_eq!(profile.status.code, 200);
        assert_eq!(profile.body["data"]["picture"], false);
    }
}
