//! What makes a checkpoint file trustworthy at load: a checksum of every
//! entry (names, kinds, shapes and bytes, the metadata included), written
//! as an entry of its own, and weights that are all finite. A file that
//! fails either is refused, and start-up serves the newest version before
//! it that passes.

use std::collections::BTreeMap;

use tch::{Kind, Tensor};
use xxhash_rust::xxh3::Xxh3Default;

/// The checksum of `entries` (every entry of a file but the checksum's
/// own), independent of their order.
pub fn checksum<'a>(entries: impl IntoIterator<Item = (&'a str, &'a Tensor)>) -> Result<u64, String> {
    let mut sorted: Vec<(&str, &Tensor)> = entries.into_iter().collect();
    sorted.sort_by_key(|(name, _)| *name);
    let mut hasher = Xxh3Default::new();
    for (name, tensor) in sorted {
        hasher.update(name.as_bytes());
        hasher.update(format!("{:?}{:?}", tensor.kind(), tensor.size()).as_bytes());
        hasher.update(&bytes_of(tensor)?);
    }
    Ok(hasher.digest())
}

/// The checksum as a tensor entry (8 bytes).
pub fn to_entry(sum: u64) -> Tensor {
    Tensor::from_slice(&sum.to_le_bytes())
}

/// The checksum an entry holds, if it is one.
pub fn from_entry(entry: &Tensor) -> Option<u64> {
    let bytes = Vec::<u8>::try_from(entry).ok()?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// The bytes of a tensor's elements, in order.
fn bytes_of(tensor: &Tensor) -> Result<Vec<u8>, String> {
    let n = tensor.numel() * tensor.kind().elt_size_in_bytes();
    let mut bytes = vec![0u8; n];
    if n > 0 {
        tensor
            .f_to_device(tch::Device::Cpu)
            .and_then(|t| t.f_contiguous())
            .and_then(|t| t.f_flatten(0, -1))
            .and_then(|t| t.f_view_dtype(Kind::Uint8))
            .and_then(|t| t.f_copy_data_u8(&mut bytes, n))
            .map_err(|e| e.to_string())?;
    }
    Ok(bytes)
}

/// The first variable of `params` with a value that is not finite.
pub fn first_non_finite(params: &BTreeMap<String, Tensor>) -> Result<Option<String>, String> {
    for (name, tensor) in params {
        if !tensor.is_floating_point() {
            continue;
        }
        if tensor.numel() == 0 {
            continue;
        }
        // Two reductions instead of `isfinite` (a mask, several passes): a
        // NaN spreads into both, an infinity shows in one.
        let extreme = |t: tch::Result<Tensor>| t.and_then(|t| t.f_double_value(&[])).map_err(|e| e.to_string());
        let (max, min) = (extreme(tensor.f_max())?, extreme(tensor.f_min())?);
        if !(max.is_finite() && min.is_finite()) {
            return Ok(Some(name.clone()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_changed_byte_name_or_shape_changes_the_checksum() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]);
        let b = Tensor::from_slice(&[7u8, 8]);
        let sum = checksum([("a", &a), ("b", &b)]).unwrap();
        assert_eq!(checksum([("b", &b), ("a", &a)]).unwrap(), sum, "order does not matter");
        let changed = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.000001]);
        assert_ne!(checksum([("a", &changed), ("b", &b)]).unwrap(), sum);
        assert_ne!(checksum([("c", &a), ("b", &b)]).unwrap(), sum);
        assert_ne!(checksum([("a", &a.reshape([2, 2])), ("b", &b)]).unwrap(), sum);
        assert_eq!(from_entry(&to_entry(sum)), Some(sum));
    }

    #[test]
    fn non_finite_weights_are_found() {
        let mut params = BTreeMap::new();
        params.insert("ok".to_string(), Tensor::from_slice(&[1.0f32]));
        params.insert("rows".to_string(), Tensor::from_slice(&[3i64]));
        assert_eq!(first_non_finite(&params).unwrap(), None);
        params.insert("w".to_string(), Tensor::from_slice(&[1.0f32, f32::NAN]));
        assert_eq!(first_non_finite(&params).unwrap(), Some("w".to_string()));
    }
}
