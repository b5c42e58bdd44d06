//! What a picture really is: its format, told by its first bytes, then proved by decoding it
//! under limits, and re-encoded so that nothing but pixels survives (EXIF, GPS, comments, text
//! chunks, trailing bytes, a polyglot's second personality).
//!
//! - PNG stays PNG and JPEG stays JPEG (quality 90); the EXIF orientation is applied to the
//!   pixels before the metadata goes, so portrait photos stay upright. The ICC colour profile,
//!   which holds no personal data, is kept so colours do not shift.
//! - GIF stays GIF with its first frame only: an avatar is a still image, and one frame keeps
//!   the decoding cost bounded by one canvas. Animated PNGs likewise keep their default image.
//! - At most [`MAX_SIDE`] pixels a side and [`MAX_DECODED`] bytes decoded: a tiny file that
//!   claims 50000×50000 pixels is refused from its header, before any allocation.
//!
//! Decoding and encoding are CPU work: callers run [`reencode`] on a blocking thread.

use std::io::Cursor;

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::error::{ImageError, LimitErrorKind};
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageFormat, ImageReader, Limits};
use kernel::ApiError;

use crate::size;
use crate::upload::EXTENSION_NOT_ALLOWED;

/// Longest side accepted, in pixels.
pub const MAX_SIDE: u32 = 8192;
/// Largest decoded image accepted, in bytes (a 12-megapixel photo takes 36 MB).
pub const MAX_DECODED: u64 = 128 * 1024 * 1024;
/// JPEG re-encoding quality: visually lossless for photos, a third of the size of 100.
pub const JPEG_QUALITY: u8 = 90;
/// Speed of the colour quantizer, used only when a GIF's first frame over its canvas ends up with
/// more than 256 colours (a full palette plus transparent borders): 10 is the gif crate's
/// suggested balance; image's default, 1, takes seconds on a large canvas.
const GIF_QUANTIZER_SPEED: i32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
    Gif,
}

impl Format {
    /// The format a file name promises, from its extension (case-insensitively): FitTrackee's
    /// `.png`, `.jpg`, `.jpeg` and `.gif`.
    pub fn from_file_name(name: &str) -> Option<Format> {
        let (_, extension) = name.rsplit_once('.')?;
        match extension.to_ascii_lowercase().as_str() {
            "png" => Some(Format::Png),
            "jpg" | "jpeg" => Some(Format::Jpeg),
            "gif" => Some(Format::Gif),
            _ => None,
        }
    }

    /// The format the content starts like, from its magic bytes.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Format::Jpeg)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Format::Gif)
        } else {
            None
        }
    }

    /// The name kept in the store.
    pub fn name(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpeg",
            Format::Gif => "gif",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        [Format::Png, Format::Jpeg, Format::Gif]
            .into_iter()
            .find(|f| f.name() == name)
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Jpeg => "image/jpeg",
            Format::Gif => "image/gif",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Format::Png => ImageFormat::Png,
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Gif => ImageFormat::Gif,
        }
    }
}

/// Why a picture was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not an image of the promised format (wrong magic bytes, or it does not decode).
    NotAnImage,
    /// Wider or higher than [`MAX_SIDE`].
    TooManyPixels,
    /// Would take more than [`MAX_DECODED`] bytes decoded.
    TooBigDecoded,
}

impl Refusal {
    /// The answer: a 400 with FitTrackee's message for what is not an image, and the limit
    /// that was hit for an image too large.
    pub fn into_error(self) -> ApiError {
        ApiError::bad_request(match self {
            Refusal::NotAnImage => EXTENSION_NOT_ALLOWED.to_owned(),
            Refusal::TooManyPixels => {
                format!("image too large: at most {MAX_SIDE}x{MAX_SIDE} pixels")
            }
            Refusal::TooBigDecoded => format!(
                "image too large: more than {} once decoded",
                size::readable(MAX_DECODED)
            ),
        })
    }
}

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED);
    limits
}

fn refusal(error: &ImageError) -> Refusal {
    match error {
        ImageError::Limits(e) => match e.kind() {
            LimitErrorKind::DimensionError => Refusal::TooManyPixels,
            _ => Refusal::TooBigDecoded,
        },
        _ => Refusal::NotAnImage,
    }
}

/// Checks that `bytes` is an image of `format`, decodes it under limits and encodes it again
/// in the same format. Returns the new bytes.
pub fn reencode(format: Format, bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    if Format::sniff(bytes) != Some(format) {
        return Err(Refusal::NotAnImage);
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    reader.limits(limits());
    let mut decoder = reader.into_decoder().map_err(|e| refusal(&e))?;
    let (width, height) = decoder.dimensions();
    // An image without pixels (a damaged GIF can say 0 × 4) would be stored and then served as
    // bytes no decoder reads back.
    if width == 0 || height == 0 {
        return Err(Refusal::NotAnImage);
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(Refusal::TooManyPixels);
    }
    if decoder.total_bytes() > MAX_DECODED {
        return Err(Refusal::TooBigDecoded);
    }
    // Metadata is only read to be applied (orientation) or carried over (colour profile); a
    // broken chunk of it is no reason to refuse the pixels.
    let orientation = decoder.orientation().ok();
    let icc_profile = decoder.icc_profile().ok().flatten();
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| refusal(&e))?;
    if image.width() == 0 || image.height() == 0 {
        return Err(Refusal::NotAnImage);
    }
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    encode(format, &image, icc_profile).map_err(|e| {
        tracing::error!("re-encoding a {} picture: {e}", format.name());
        Refusal::NotAnImage
    })
}

fn encode(
    format: Format,
    image: &DynamicImage,
    icc_profile: Option<Vec<u8>>,
) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    match format {
        Format::Png => write(PngEncoder::new(&mut out), image, icc_profile)?,
        Format::Jpeg => write(
            JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY),
            image,
            icc_profile,
        )?,
        // GIF carries no colour profile.
        Format::Gif => write(
            GifEncoder::new_with_speed(&mut out, GIF_QUANTIZER_SPEED),
            image,
            None,
        )?,
    }
    Ok(out)
}

fn write(
    mut encoder: impl ImageEncoder,
    image: &DynamicImage,
    icc_profile: Option<Vec<u8>>,
) -> Result<(), ImageError> {
    if let Some(profile) = icc_profile {
        // An encoder that cannot carry the profile still writes the pixels.
        let _ = encoder.set_icc_profile(profile);
    }
    // `write_with_encoder` converts the pixels to a layout the encoder takes (e.g. JPEG drops
    // an alpha channel, GIF takes RGBA).
    image.write_with_encoder(encoder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        DynamicImage::new_rgb8(width, height)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .expect("encode");
        out
    }

    #[test]
    fn extensions() {
        assert_eq!(Format::from_file_name("me.PNG"), Some(Format::Png));
        assert_eq!(Format::from_file_name("a.b.JpEg"), Some(Format::Jpeg));
        assert_eq!(Format::from_file_name("x.jpg"), Some(Format::Jpeg));
        assert_eq!(
            Format::from_file_name("../../etc/passwd.gif"),
            Some(Format::Gif)
        );
        for name in ["png", "x.svg", "x.png.html", "x.", "x.webp", ".png.exe"] {
            assert_eq!(Format::from_file_name(name), None, "{name}");
        }
    }

    #[test]
    fn the_content_must_be_the_promised_format() {
        let bytes = png(4, 3);
        assert!(reencode(Format::Png, &bytes).is_ok());
        assert_eq!(reencode(Format::Jpeg, &bytes), Err(Refusal::NotAnImage));
        assert_eq!(
            reencode(Format::Png, b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
            Err(Refusal::NotAnImage)
        );
        // The magic bytes alone are not an image.
        assert_eq!(
            reencode(Format::Png, b"\x89PNG\r\n\x1a\n<html>"),
            Err(Refusal::NotAnImage)
        );
    }

    #[test]
    fn too_many_pixels() {
        assert_eq!(
            reencode(Format::Png, &png(MAX_SIDE + 1, 1)),
            Err(Refusal::TooManyPixels)
        );
    }

    #[test]
    fn the_colour_profile_stays() {
        let profile = b"stand-in ICC profile bytes".to_vec();
        for format in [Format::Png, Format::Jpeg] {
            let mut original = Vec::new();
            let image = DynamicImage::new_rgb8(3, 2);
            match format {
                Format::Png => write(
                    PngEncoder::new(&mut original),
                    &image,
                    Some(profile.clone()),
                ),
                _ => write(
                    JpegEncoder::new(&mut original),
                    &image,
                    Some(profile.clone()),
                ),
            }
            .expect("encode");
            let served = reencode(format, &original).expect("re-encode");
            let mut reader = ImageReader::with_format(Cursor::new(&served), format.image_format());
            reader.limits(limits());
            let mut decoder = reader.into_decoder().expect("decoder");
            assert_eq!(
                decoder.icc_profile().expect("read"),
                Some(profile.clone()),
                "{format:?}"
            );
        }
    }

    #[test]
    fn a_gif_canvas_counts() {
        // A 2×2 frame on a canvas that claims 8192×8192 (256 MB of RGBA): refused from the
        // header, whatever the frame.
        let mut gif = Vec::new();
        DynamicImage::new_rgba8(2, 2)
            .write_to(&mut Cursor::new(&mut gif), ImageFormat::Gif)
            .expect("encode");
        gif[6..8].copy_from_slice(&8192u16.to_le_bytes());
        gif[8..10].copy_from_slice(&8192u16.to_le_bytes());
        assert_eq!(reencode(Format::Gif, &gif), Err(Refusal::TooBigDecoded));
    }

    #[test]
    fn names_round_trip() {
        for format in [Format::Png, Format::Jpeg, Format::Gif] {
            assert_eq!(Format::from_name(format.name()), Some(format));
        }
        assert_eq!(Format::from_name("svg"), None);
    }
}

/// `reencode` over generated bytes: it never panics, refuses what is not its format, and what
/// it accepts comes out as a real image of that format.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn formats() -> impl Strategy<Value = Format> {
        prop_oneof![Just(Format::Png), Just(Format::Jpeg), Just(Format::Gif)]
    }

    fn magic(format: Format) -> &'static [u8] {
        match format {
            Format::Png => b"\x89PNG\r\n\x1a\n",
            Format::Jpeg => b"\xff\xd8\xff",
            Format::Gif => b"GIF89a",
        }
    }

    /// A small real image of each format.
    fn sample(format: Format) -> Vec<u8> {
        let image = match format {
            Format::Jpeg => DynamicImage::new_rgb8(9, 7),
            _ => DynamicImage::new_rgba8(5, 4),
        };
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), format.image_format())
            .expect("encode");
        out
    }

    fn check(format: Format, bytes: &[u8]) -> Result<(), TestCaseError> {
        let outcome = reencode(format, bytes);
        if Format::sniff(bytes) != Some(format) {
            prop_assert_eq!(outcome.clone(), Err(Refusal::NotAnImage));
        }
        if let Ok(served) = outcome {
            prop_assert_eq!(Format::sniff(&served), Some(format));
            let mut reader = ImageReader::with_format(Cursor::new(&served), format.image_format());
            reader.limits(limits());
            prop_assert!(reader.decode().is_ok(), "served bytes do not decode");
        }
        Ok(())
    }

    /// Found by `damaged_images`: a zero in a GIF's logical screen width or height made an
    /// image of no pixels, accepted, then served as bytes no decoder reads.
    #[test]
    fn an_image_without_pixels_is_refused() {
        for at in [6, 8] {
            let mut bytes = sample(Format::Gif);
            bytes[at] = 0;
            assert_eq!(
                reencode(Format::Gif, &bytes),
                Err(Refusal::NotAnImage),
                "byte {at}"
            );
            check(Format::Gif, &bytes).expect("the property holds");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn any_bytes(format in formats(), bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            check(format, &bytes)?;
        }

        #[test]
        fn magic_bytes_then_noise(
            format in formats(),
            tail in proptest::collection::vec(any::<u8>(), 0..4096),
        ) {
            check(format, &[magic(format), &tail].concat())?;
        }

        #[test]
        fn damaged_images(
            format in formats(),
            damage in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        ) {
            let mut bytes = sample(format);
            for (at, byte) in damage {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            check(format, &bytes)?;
        }

        #[test]
        fn cut_images(format in formats(), cut in any::<usize>()) {
            let bytes = sample(format);
            check(format, &bytes[..cut % (bytes.len() + 1)])?;
        }
    }
}
