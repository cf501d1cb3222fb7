//! The `grayscale` job: raw RGB pixels to 8-bit luma.

use alloc::vec::Vec;

/// Converts raw RGB pixels (3 bytes each, `r g b`) to one luma byte per pixel,
/// `(77 r + 150 g + 29 b) >> 8` (the BT.601 weights in 8-bit fixed point; they sum
/// to 256, so white stays 255). A trailing partial pixel (1 or 2 bytes) is ignored: the
/// output is `rgb.len() / 3` bytes, so an input of at most 768 KiB keeps it within the
/// 256 KiB output limit of the call ABI.
pub fn grayscale(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .map(|p| {
            let (r, g, b) = (u32::from(p[0]), u32::from(p[1]), u32::from(p[2]));
            // At most 256 * 255 >> 8 = 255: the cast never truncates.
            ((77 * r + 150 * g + 29 * b) >> 8) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_pixels() {
        let rgb = [
            0, 0, 0, // black
            255, 255, 255, // white
            255, 0, 0, // red
            0, 255, 0, // green
            0, 0, 255, // blue
            10, 20, // partial pixel: ignored
        ];
        assert_eq!(grayscale(&rgb), [0, 255, 76, 149, 28]);
    }

    #[test]
    fn empty_and_partial_inputs_give_no_pixels() {
        assert!(grayscale(&[]).is_empty());
        assert!(grayscale(&[1]).is_empty());
        assert!(grayscale(&[1, 2]).is_empty());
    }

    proptest! {
        #[test]
        fn one_byte_per_whole_pixel(rgb in proptest::collection::vec(any::<u8>(), 0..300)) {
            let out = grayscale(&rgb);
            prop_assert_eq!(out.len(), rgb.len() / 3);
            for (y, p) in out.iter().zip(rgb.chunks_exact(3)) {
                // A weighted mean: between the darkest and the brightest channel.
                prop_assert!(*y <= *p.iter().max().expect("3 bytes"));
                prop_assert!(*y >= *p.iter().min().expect("3 bytes"));
            }
        }
    }
}
