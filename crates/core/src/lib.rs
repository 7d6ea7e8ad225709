//! semaug-core: the flow-matching engine and the project's one source of randomness.
//!
//! Principal types: [`seeds::Stream`] (counter-based RNG keyed by run seed, sample,
//! variant and step). The engine modules (time convention, velocity fields, sigma grids,
//! solvers and the one integration loop) live beside it.
//!
//! Key decision: one time convention, sigma in [0, 1] with sigma = 1 pure noise and
//! `x_sigma = (1 - sigma) x0 + sigma eps`; no other module defines time.

pub mod seeds;
