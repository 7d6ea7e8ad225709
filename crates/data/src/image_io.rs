//! Image files in and out, with explicit limits, and the u8 <-> tensor conversion.
//!
//! Every image semaug reads goes through [`decode_file`] / [`decode_bytes`]: the format
//! is sniffed from the bytes (PNG, JPEG, BMP, WebP, GIF), the header's size is checked
//! against [`Limits`] before any pixel buffer is allocated (a 100000x100000 header is
//! refused, not attempted), and grey, grey+alpha, RGBA, 16-bit and palette images all
//! come back as 8-bit RGB. Errors name the file and say what to do.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use image::{ImageFormat, ImageReader, RgbImage};

/// Refuse images larger than this before decoding them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_width: u32,
    pub max_height: u32,
    /// Pixels (width x height); the default is PIL's decompression-bomb threshold x 2.
    pub max_pixels: u64,
    /// Bytes the decoder may allocate.
    pub max_alloc: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_width: 65_535,
            max_height: 65_535,
            max_pixels: 178_956_970,
            max_alloc: 2 << 30,
        }
    }
}

/// What went wrong reading or writing an image, always with the file's path.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: cannot read the file: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a supported image (PNG, JPEG, BMP, WebP or GIF); check the file type")]
    UnknownFormat { path: PathBuf },
    #[error(
        "{path}: image is {width}x{height}, over the limit of {max_width}x{max_height} and \
         {max_pixels} pixels; downscale it first"
    )]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
        max_pixels: u64,
    },
    #[error("{path}: corrupt or truncated image ({detail}); re-export or remove the file")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path}: cannot encode image: {detail}")]
    Encode { path: PathBuf, detail: String },
}

/// Read and decode an image file to 8-bit RGB, within `limits`.
pub fn decode_file(path: &Path, limits: &Limits) -> Result<RgbImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Io {
        path: path.to_owned(),
        source,
    })?;
    decode_bytes(&bytes, path, limits)
}

/// Decode in-memory image bytes; `path` is only used in error messages.
pub fn decode_bytes(bytes: &[u8], path: &Path, limits: &Limits) -> Result<RgbImage, ImageError> {
    let format = image::guess_format(bytes).map_err(|_| ImageError::UnknownFormat {
        path: path.to_owned(),
    })?;
    if !matches!(
        format,
        ImageFormat::Png
            | ImageFormat::Jpeg
            | ImageFormat::Bmp
            | ImageFormat::WebP
            | ImageFormat::Gif
    ) {
        return Err(ImageError::UnknownFormat {
            path: path.to_owned(),
        });
    }
    let corrupt = |e: image::ImageError| ImageError::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    };
    // Headers only: no size limit here, so an oversized image gets our own error
    // with its real size rather than the decoder's generic one. A PNG's size is read
    // straight from its IHDR, so even a truncated bomb is reported as too large.
    let (width, height) = match png_ihdr_size(bytes) {
        Some(size) => size,
        None => reader(bytes, format, None)
            .into_dimensions()
            .map_err(corrupt)?,
    };
    check_size(path, width, height, limits)?;
    let image = reader(bytes, format, Some(limits))
        .decode()
        .map_err(corrupt)?;
    Ok(image.to_rgb8())
}

fn reader<'a>(
    bytes: &'a [u8],
    format: ImageFormat,
    limits: Option<&Limits>,
) -> ImageReader<Cursor<&'a [u8]>> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder_limits = image::Limits::no_limits();
    if let Some(limits) = limits {
        decoder_limits.max_image_width = Some(limits.max_width);
        decoder_limits.max_image_height = Some(limits.max_height);
        decoder_limits.max_alloc = Some(limits.max_alloc);
    }
    reader.limits(decoder_limits);
    reader
}

/// Width and height from a PNG's IHDR chunk (signature, length 13, "IHDR", w, h).
fn png_ihdr_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || &bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let word = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    Some((word(16), word(20)))
}

fn check_size(path: &Path, width: u32, height: u32, limits: &Limits) -> Result<(), ImageError> {
    let pixels = width as u64 * height as u64;
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt {
            path: path.to_owned(),
            detail: format!("zero-sized image {width}x{height}"),
        });
    }
    if width > limits.max_width || height > limits.max_height || pixels > limits.max_pixels {
        return Err(ImageError::TooLarge {
            path: path.to_owned(),
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
            max_pixels: limits.max_pixels,
        });
    }
    Ok(())
}

/// Lossless PNG bytes of an RGB image (deterministic for equal pixels).
pub fn encode_png(image: &RgbImage) -> Result<Vec<u8>, ImageError> {
    encode(image, ImageFormat::Png)
}

/// JPEG bytes at `quality` (1-100).
pub fn encode_jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    let encoder =
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100));
    image
        .write_with_encoder(encoder)
        .map_err(|e| ImageError::Encode {
            path: PathBuf::from("<memory>"),
            detail: e.to_string(),
        })?;
    Ok(out)
}

/// Grey 8-bit PNG bytes (for masks).
pub fn encode_png_luma(image: &image::GrayImage) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .map_err(|e| ImageError::Encode {
            path: PathBuf::from("<memory>"),
            detail: e.to_string(),
        })?;
    Ok(out)
}

fn encode(image: &RgbImage, format: ImageFormat) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), format)
        .map_err(|e| ImageError::Encode {
            path: PathBuf::from("<memory>"),
            detail: e.to_string(),
        })?;
    Ok(out)
}

/// u8 RGB images (all the same size) -> f32 tensor `[N, 3, H, W]` in [-1, 1],
/// computed as `2 * (u / 255) - 1` in f32 like diffusers' image processor.
pub fn images_to_tensor(images: &[RgbImage], device: &Device) -> candle_core::Result<Tensor> {
    let Some(first) = images.first() else {
        candle_core::bail!("images_to_tensor: empty batch")
    };
    let (w, h) = first.dimensions();
    let plane = (w * h) as usize;
    let mut data = vec![0f32; images.len() * 3 * plane];
    for (n, image) in images.iter().enumerate() {
        if image.dimensions() != (w, h) {
            candle_core::bail!(
                "images_to_tensor: image {n} is {:?}, expected {w}x{h}",
                image.dimensions()
            );
        }
        let sample = &mut data[n * 3 * plane..(n + 1) * 3 * plane];
        for (i, px) in image.pixels().enumerate() {
            for c in 0..3 {
                sample[c * plane + i] = 2.0 * (px[c] as f32 / 255.0) - 1.0;
            }
        }
    }
    Tensor::from_vec(data, (images.len(), 3, h as usize, w as usize), device)
}

/// f32 tensor `[N, 3, H, W]` in [-1, 1] -> u8 RGB images, clamped and rounded
/// (`round((x + 1) / 2 * 255)`).
pub fn tensor_to_images(tensor: &Tensor) -> candle_core::Result<Vec<RgbImage>> {
    let (n, c, h, w) = tensor.dims4()?;
    if c != 3 {
        candle_core::bail!("tensor_to_images: expected 3 channels, got {c}");
    }
    let data = tensor
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let plane = h * w;
    let images = (0..n)
        .map(|k| {
            let sample = &data[k * 3 * plane..(k + 1) * 3 * plane];
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let i = y as usize * w + x as usize;
                image::Rgb([0, 1, 2].map(|ch| to_u8(sample[ch * plane + i])))
            })
        })
        .collect();
    Ok(images)
}

fn to_u8(v: f32) -> u8 {
    (((v + 1.0) * 0.5).clamp(0.0, 1.0) * 255.0).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 11) as u8, ((x + y) * 3) as u8])
        })
    }

    #[test]
    fn png_round_trip_is_lossless() {
        let img = gradient(17, 9);
        let bytes = encode_png(&img).unwrap();
        let back = decode_bytes(&bytes, Path::new("mem.png"), &Limits::default()).unwrap();
        assert_eq!(img, back);
    }

    #[test]
    fn tensor_round_trip_is_exact() {
        let imgs = vec![gradient(8, 6), gradient(8, 6)];
        let t = images_to_tensor(&imgs, &Device::Cpu).unwrap();
        assert_eq!(t.dims4().unwrap(), (2, 3, 6, 8));
        let max = t
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(max <= 1.0);
        assert_eq!(tensor_to_images(&t).unwrap(), imgs);
    }

    #[test]
    fn grey_and_rgba_become_rgb() {
        let grey = image::GrayImage::from_fn(4, 4, |x, _| image::Luma([x as u8 * 60]));
        let bytes = encode_png_luma(&grey).unwrap();
        let rgb = decode_bytes(&bytes, Path::new("g.png"), &Limits::default()).unwrap();
        assert_eq!(rgb.get_pixel(2, 0).0, [120, 120, 120]);
    }

    #[test]
    fn oversized_header_is_refused_before_decoding() {
        let img = gradient(40, 30);
        let bytes = encode_png(&img).unwrap();
        let limits = Limits {
            max_pixels: 1000,
            ..Limits::default()
        };
        let err = decode_bytes(&bytes, Path::new("big.png"), &limits).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::TooLarge {
                    width: 40,
                    height: 30,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("big.png"));
    }

    #[test]
    fn huge_png_header_is_too_large() {
        let png = crafted_png_header(100_000, 100_000);
        let err = decode_bytes(&png, Path::new("huge.png"), &Limits::default()).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::TooLarge {
                    width: 100_000,
                    height: 100_000,
                    ..
                }
            ),
            "{err}"
        );
    }

    /// PNG signature + IHDR (8-bit RGB) + a tiny IDAT + IEND, all with correct CRCs:
    /// what a decompression bomb's first bytes look like.
    fn crafted_png_header(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend(width.to_be_bytes());
        ihdr.extend(height.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(13u32.to_be_bytes());
        png.extend(&ihdr);
        png.extend(crc32(&ihdr).to_be_bytes());
        for (kind, data) in [
            (&b"IDAT"[..], &[0x78u8, 0x9c, 0x03, 0x00][..]),
            (b"IEND", &[]),
        ] {
            let chunk = [kind, data].concat();
            png.extend((data.len() as u32).to_be_bytes());
            png.extend(&chunk);
            png.extend(crc32(&chunk).to_be_bytes());
        }
        png
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for b in bytes {
            crc ^= *b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn garbage_is_unknown_format_and_truncation_is_corrupt() {
        let err = decode_bytes(b"hello", Path::new("x.jpg"), &Limits::default()).unwrap_err();
        assert!(matches!(err, ImageError::UnknownFormat { .. }));
        let bytes = encode_png(&gradient(32, 32)).unwrap();
        let err = decode_bytes(
            &bytes[..bytes.len() / 2],
            Path::new("t.png"),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ImageError::Corrupt { .. }), "{err}");
        assert!(err.to_string().starts_with("t.png: corrupt"));
    }
}
