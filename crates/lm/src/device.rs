//! Where a command runs: `--device auto|cpu|cuda|cuda:N` (issue 24). `auto` is the first
//! CUDA device when this build has CUDA (`--features cuda`) and a device answers, else the
//! CPU. Asking for CUDA from a build without it, or on a machine where no device answers,
//! is an error that says which is missing.

use crate::error::{LmError, Result};
use candle_core::Device;

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
