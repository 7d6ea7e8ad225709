//! The engine's one error type: every variant carries the offending value and says
//! what a valid one looks like, so a caller can print it unchanged.

/// Errors from the time convention, grids, solvers and the integration loop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "strength {value} is outside [0, 1]: 0 keeps the image unchanged, \
         1 starts from pure noise"
    )]
    StrengthOutOfRange { value: f64 },

    #[error(
        "composition level {level} of {levels} is invalid: need levels >= 1 and \
         0 <= level <= levels"
    )]
    CompositionLevel { level: usize, levels: usize },

    #[error("{name} = {value} is invalid: expected {expected}")]
    InvalidParameter {
        name: &'static str,
        value: f64,
        expected: &'static str,
    },

    #[error("a sigma grid needs at least one sigma, got none")]
    EmptyGrid,

    #[error("sigma grid entry {index} is {value}, outside [0, 1]")]
    GridSigmaOutOfRange { index: usize, value: f64 },

    #[error(
        "sigma grid is not strictly monotone at entry {index}: {previous} then {value}; \
         a grid runs strictly down (generate) or strictly up (invert)"
    )]
    GridNotMonotone {
        index: usize,
        previous: f64,
        value: f64,
    },

    #[error(
        "cannot truncate at strength {strength}: the grid's noisiest sigma is {noisiest}; \
         build the grid from a sigma of at least the strength"
    )]
    GridBelowStrength { strength: f64, noisiest: f64 },

    #[error("unknown solver '{name}': expected one of euler, heun, midpoint, rk4, dopri5")]
    UnknownSolver { name: String },

    #[error(
        "bad dopri5 options '{spec}': expected 'dopri5' or \
         'dopri5:rtol=<positive>,atol=<positive>'"
    )]
    Dopri5Spec { spec: String },

    #[error(
        "dopri5 step size fell to {step:e} at sigma {sigma}: the field is too stiff or not \
         finite here; loosen rtol/atol or use a fixed-step solver"
    )]
    StepUnderflow { sigma: f64, step: f64 },

    #[error(
        "dopri5 took more than {max_steps} steps between sigma {from} and {to}; \
         loosen rtol/atol or use a finer grid"
    )]
    TooManySteps {
        from: f64,
        to: f64,
        max_steps: usize,
    },

    #[error("solver step {step} from sigma {from} to {to} failed")]
    Step {
        step: usize,
        from: f64,
        to: f64,
        #[source]
        source: candle_core::Error,
    },

    #[error("step hook after step {step} (sigma {sigma}) failed")]
    Hook {
        step: usize,
        sigma: f64,
        #[source]
        source: candle_core::Error,
    },

    #[error("condition {condition} is not known to {generator}: {hint}")]
    UnknownCondition {
        condition: String,
        generator: String,
        hint: String,
    },

    /// A backend-specific failure (e.g. a model's own schedule rejected the request).
    #[error("{0}")]
    Backend(String),

    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// Result with the engine's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
