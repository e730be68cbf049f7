//! Reading a built-in model's variable from a checkpoint.

use tch::{Device, Tensor};

use crate::base::ModelError;

/// A checkpoint's variable `name`, moved to `device`; an error naming it when
/// the checkpoint lacks it.
pub(crate) fn saved_param(
    params: &std::collections::BTreeMap<String, Tensor>,
    name: &str,
    device: Device,
) -> Result<Tensor, ModelError> {
    let saved = params
        .get(name)
        .ok_or_else(|| ModelError::IncompatibleCheckpoint(format!("the checkpoint has no variable {name}")))?;
    Ok(saved.f_to_device(device)?)
}
