//! Where an experiment's cells run (issue 24): each model's `device` and `dtype` in the
//! experiment file, else `experiment run --device/--dtype`, else `auto`. Cells run on the
//! CPU in f32 keep the identity they always had (committed cells stay valid); elsewhere
//! the device's kind and dtype join it ([`Place::identity`]).

use super::spec::ModelSpec;
use anyhow::{bail, Context as _, Result};
use fairrec_lm::device::{DTypeSpec, DeviceSpec, Place};

impl ModelSpec {
    /// The model's `device` and `dtype` as asked (`auto` where absent).
    pub fn placement_specs(&self) -> Result<(DeviceSpec, DTypeSpec)> {
        let bad = |what: &str, e: String| anyhow::anyhow!("model `{}`: {what} {e}", self.name);
        let device = (self.device.as_deref().unwrap_or("auto"))
            .parse::<DeviceSpec>()
            .map_err(|e| bad("device", e))?;
        let dtype = (self.dtype.as_deref().unwrap_or("auto"))
            .parse::<DTypeSpec>()
            .map_err(|e| bad("dtype", e))?;
        Ok((device, dtype))
    }

    /// Resolve where its cells run (opens the device: once per model and grid run).
    pub(super) fn place(&self) -> Result<Place> {
        let (d, t) = self.placement_specs()?;
        Place::resolve(d, t).with_context(|| format!("model `{}`", self.name))
    }
}

/// Flag tables may not say where to run: that is the model's `device`/`dtype` (or
/// `experiment run --device/--dtype`), which leave CPU cells' identities as they were.
pub(super) fn refuse_in_table(table: &toml::Table, origin: &str) -> Result<()> {
    match ["device", "dtype"].into_iter().find(|k| table.contains_key(*k)) {
        Some(k) => bail!("{origin}: `{k}` is where cells run, not a flag of their commands: set it on the model (`{k} = \"...\"` under [[models]]) or with `fairrec experiment run --{k}`"),
        None => Ok(()),
    }
}
