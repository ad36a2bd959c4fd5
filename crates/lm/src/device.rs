//! Where a command runs and in which precision: `--device auto|cpu|cuda|cuda:N` and
//! `--dtype auto|f32|bf16|f16` (issue 24). `auto` is the first CUDA device when this build
//! has CUDA (`--features cuda`) and a device answers, else the CPU. Asking for CUDA from a
//! build without it, or on a machine where no device answers, is an error that says which
//! is missing. The dtype is that of the frozen base weights and activations; adapters,
//! soft prompts, MoS, optimiser state, losses and softmax stay in f32 (as peft keeps them).

use crate::error::{LmError, Result};
use candle_core::{DType, Device};

/// A device as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            o => match o.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceSpec::Cuda(n)),
                _ => Err(format!("`{o}`: expected auto, cpu, cuda or cuda:N")),
            },
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Whether this build carries the CUDA engine.
pub const CUDA_BUILD: bool = cfg!(feature = "cuda");

impl DeviceSpec {
    /// The device to run on (see the module's doc for `auto`).
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Auto if !CUDA_BUILD => Ok(Device::Cpu),
            DeviceSpec::Auto => Ok(Device::new_cuda(0).unwrap_or_else(|e| {
                tracing::info!("no CUDA device answered ({e}); running on the CPU");
                Device::Cpu
            })),
            DeviceSpec::Cuda(n) if !CUDA_BUILD => Err(LmError::Invalid(format!(
                "--device cuda:{n}: this fairrec was built without CUDA; build one with `cargo build --release -p fairrec --features cuda` (a toolkit: nvcc and the CUDA libraries; bench/NOTES.md installs them from pip wheels)"
            ))),
            DeviceSpec::Cuda(n) => Device::new_cuda(n).map_err(|e| {
                LmError::Invalid(format!(
                    "--device cuda:{n}: no CUDA device {n} answered ({e}); is there a GPU and its driver (`nvidia-smi`)?"
                ))
            }),
        }
    }
}

/// A precision as named on the command line (`--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DTypeSpec {
    /// bf16 on a CUDA device that computes in it, else f32.
    #[default]
    Auto,
    F32,
    Bf16,
    F16,
}

impl std::str::FromStr for DTypeSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(DTypeSpec::Auto),
            "f32" => Ok(DTypeSpec::F32),
            "bf16" => Ok(DTypeSpec::Bf16),
            "f16" => Ok(DTypeSpec::F16),
            o => Err(format!("`{o}`: expected auto, f32, bf16 or f16")),
        }
    }
}

impl std::fmt::Display for DTypeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DTypeSpec::Auto => "auto",
            DTypeSpec::F32 => "f32",
            DTypeSpec::Bf16 => "bf16",
            DTypeSpec::F16 => "f16",
        })
    }
}

impl DTypeSpec {
    /// The dtype on `device`: `auto` is bf16 on a CUDA device whose kernels compute in it
    /// (probed with one small product, so a GPU without bf16 falls back to f32), f32 on the
    /// CPU (bf16 there is asked for: weights in bf16, hidden states in f32, `ops::bf16`).
    pub fn resolve(self, device: &Device) -> DType {
        match self {
            DTypeSpec::F32 => DType::F32,
            DTypeSpec::Bf16 => DType::BF16,
            DTypeSpec::F16 => DType::F16,
            DTypeSpec::Auto if device.is_cpu() => DType::F32,
            DTypeSpec::Auto => {
                let probe = candle_core::Tensor::ones((2, 2), DType::BF16, device)
                    .and_then(|t| t.matmul(&t))
                    .and_then(|t| t.to_dtype(DType::F32))
                    .and_then(|t| t.sum_all())
                    .and_then(|t| t.to_scalar::<f32>());
                match probe {
                    Ok(8.0) => DType::BF16,
                    other => {
                        tracing::info!("bf16 unavailable on this device ({other:?}); using f32");
                        DType::F32
                    }
                }
            }
        }
    }
}

/// Where a run goes, resolved: the device, the dtype asked (`auto` resolves per command:
/// f32 for full fine-tuning) and what it resolves to on the device.
#[derive(Debug, Clone)]
pub struct Place {
    pub device: Device,
    pub asked: DTypeSpec,
    pub dtype: DType,
}

impl Place {
    pub fn resolve(device: DeviceSpec, dtype: DTypeSpec) -> Result<Place> {
        let d = device.resolve()?;
        Ok(Place {
            dtype: dtype.resolve(&d),
            device: d,
            asked: dtype,
        })
    }

    /// The device's kind where it is not the CPU (`cuda`).
    pub fn gpu(&self) -> Option<&'static str> {
        (!self.device.is_cpu()).then_some("cuda")
    }

    /// What a result's identity carries of where it was computed: nothing on the CPU in
    /// f32 (the identities of every result before `--device`), else the device's kind
    /// and the dtype (ours: results differ across them within that precision, not across
    /// two GPUs of one kind).
    pub fn identity(&self) -> Option<serde_json::Value> {
        (self.gpu().is_some() || self.dtype != DType::F32).then(|| {
            serde_json::json!({
                "device": self.gpu().unwrap_or("cpu"),
                "dtype": dtype_name(self.dtype),
            })
        })
    }

    /// `--device NAME --dtype SPEC` for a command to run here (`dtype`: the one asked,
    /// or another, e.g. f32 for a full fine-tune).
    pub fn flags(&self, dtype: Option<DTypeSpec>) -> Vec<String> {
        let t = dtype.unwrap_or(self.asked).to_string();
        vec!["--device".into(), name(&self.device), "--dtype".into(), t]
    }
}

/// Free memory on `device` in bytes (`None` on the CPU, whose memory the OS manages).
pub fn free_memory(device: &Device) -> Option<usize> {
    match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => d
            .cuda_stream()
            .context()
            .mem_get_info()
            .ok()
            .map(|(free, _)| free),
        _ => None,
    }
}

/// A dtype's name as `--dtype` writes it.
pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        other => other.as_str(),
    }
}

/// What ran where, for run records (`run.json`, `cell.json`): the device and dtype, and
/// on a GPU its name and the driver's and CUDA's versions as `nvidia-smi` reports them
/// (absent where it cannot be run).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Placement {
    pub device: String,
    /// Absent from records written before `--dtype` (2026-12-05; those ran in f32).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dtype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda: Option<String>,
    /// bf16 weights on the CPU: which products ran, `avx512_bf16` (the dot-product
    /// kernels) or `widened` (the weights widened to f32): the same arithmetic, summed in
    /// another order (`ops::bf16`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bf16_kernels: Option<String>,
}

impl Placement {
    /// Where `model` runs.
    pub fn of_model(model: &dyn crate::Backbone) -> Placement {
        Placement::of(model.device(), model.dtype())
    }

    pub fn of(device: &Device, dtype: DType) -> Placement {
        let mut p = Placement {
            device: name(device),
            dtype: dtype_name(dtype).into(),
            gpu: None,
            driver: None,
            cuda: None,
            bf16_kernels: None,
        };
        if device.is_cpu() && dtype == DType::BF16 {
            let avx = crate::ops::bf16::avx512_bf16();
            p.bf16_kernels = Some(if avx { "avx512_bf16" } else { "widened" }.into());
        }
        if let candle_core::DeviceLocation::Cuda { gpu_id } = device.location() {
            (p.gpu, p.driver) = nvidia_smi(gpu_id).unwrap_or_default();
            p.cuda = cuda_version();
        }
        p
    }
}

/// The GPU's name and driver version (`nvidia-smi --query-gpu=name,driver_version`).
fn nvidia_smi(gpu: usize) -> Option<(Option<String>, Option<String>)> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,driver_version",
            "--format=csv,noheader",
            &format!("--id={gpu}"),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (gpu, driver) = text.lines().next()?.split_once(',')?;
    Some((
        Some(gpu.trim().to_string()),
        Some(driver.trim().to_string()),
    ))
}

/// The CUDA version the driver supports, from `nvidia-smi`'s header ("CUDA Version: 13.0").
fn cuda_version() -> Option<String> {
    let out = std::process::Command::new("nvidia-smi").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text.find("CUDA Version:")?;
    let v = text[at + "CUDA Version:".len()..]
        .split_whitespace()
        .next()?;
    Some(v.to_string())
}

/// A device's name as `--device` writes it (`cpu`, `cuda:N`), for run records.
pub fn name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_print_and_resolve_on_a_cpu_build() {
        for s in ["auto", "cpu", "cuda:0", "cuda:3"] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap().to_string(), s);
        }
        assert_eq!("cuda".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(0)));
        for bad in ["gpu", "cuda:", "cuda:x", "CPU", ""] {
            let e = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(e.contains("expected auto, cpu, cuda or cuda:N"), "{e}");
        }
        assert_eq!(name(&DeviceSpec::Cpu.resolve().unwrap()), "cpu");
        for s in ["auto", "f32", "bf16", "f16"] {
            assert_eq!(s.parse::<DTypeSpec>().unwrap().to_string(), s);
        }
        for bad in ["fp32", "bfloat16", "F32", ""] {
            let e = bad.parse::<DTypeSpec>().unwrap_err();
            assert!(e.contains("expected auto, f32, bf16 or f16"), "{e}");
        }
        assert_eq!(DTypeSpec::Auto.resolve(&Device::Cpu), DType::F32);
        assert_eq!(DTypeSpec::Bf16.resolve(&Device::Cpu), DType::BF16);
        let p = Placement::of(&Device::Cpu, DType::F32);
        assert_eq!((p.device.as_str(), p.dtype.as_str()), ("cpu", "f32"));
        assert!(p.gpu.is_none() && p.driver.is_none() && p.cuda.is_none());
        assert!(p.bf16_kernels.is_none());
        assert!(!serde_json::to_string(&p).unwrap().contains("bf16_kernels"));
        let b = Placement::of(&Device::Cpu, DType::BF16);
        let path = match crate::ops::bf16::avx512_bf16() {
            true => "avx512_bf16",
            false => "widened",
        };
        assert_eq!(b.bf16_kernels.as_deref(), Some(path));
        if !CUDA_BUILD {
            assert_eq!(name(&DeviceSpec::Auto.resolve().unwrap()), "cpu");
            let e = DeviceSpec::Cuda(1).resolve().unwrap_err().to_string();
            assert!(
                e.contains("--device cuda:1") && e.contains("--features cuda"),
                "{e}"
            );
        }
    }
}
