//! semaug-core: the flow-matching engine and the project's one source of randomness.
//!
//! Principal types:
//! - [`time`]: THE time convention and [`Strength`], the sigma an augmentation enters at;
//! - [`VelocityField`]: the one contract samplers see, `v(x, sigma)` (models, guidance via
//!   [`Guided`], and the closed-form test flows in [`field::analytic`]);
//! - [`SigmaGrid`]: explicit, strictly monotone sigma grids (uniform, SD3-shifted,
//!   truncated at a strength, reversed for inversion);
//! - [`Solver`]: stateless step rules (Euler, Heun, midpoint, RK4) and adaptive Dopri5;
//! - [`integrate()`]: the one loop, `(field, x, grid, solver, hook) -> x`, which generates on
//!   descending grids, inverts on ascending ones and splices or inpaints on truncated ones;
//! - [`Generator`]: the seam every backend implements (encode/decode, condition
//!   embeddings, velocity), viewed as a field through [`ConditionedField`];
//! - [`seeds::Stream`]: counter-based RNG keyed by run seed, sample, variant and step.
//!
//! Key decision: one time convention, sigma in [0, 1] with sigma = 1 pure noise and
//! `x_sigma = (1 - sigma) x0 + sigma eps`, velocity `eps - x0`; no other module defines
//! time, and no solver keeps a hidden step counter.

pub mod error;
pub mod field;
pub mod generator;
pub mod grid;
pub mod guidance;
pub mod integrate;
pub mod seeds;
pub mod solver;
pub mod time;

pub use error::{Error, Result};
pub use field::VelocityField;
pub use generator::{Condition, ConditionedField, Generator, GeneratorInfo};
pub use grid::SigmaGrid;
pub use guidance::Guided;
pub use integrate::{integrate, Integrated, StepHook};
pub use solver::{Solver, Tolerance};
pub use time::Strength;
