//! What each simulated model computes. The catalog (`models`) names a kind per model,
//! `signatures` gives each kind its signature and `predict` computes it; a module of its own so
//! that the catalog and the signatures it reports do not need each other.

/// What a model computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `y = 0.5 x + 2` (version 1) or `y = 0.5 x + 3` (version 2 and later).
    HalfPlusTwo,
    /// Each output echoes one input of the same dtype.
    EchoTypes,
    /// Echoes one input of every dtype.
    AllTypes,
    /// Echoes x; version 1 takes DT_FLOAT, version 2 (loaded at run time) DT_INT64.
    Evolving,
    /// `y = 2 x` for x of shape [3] exactly (no batch dimension).
    Fixed3,
    /// Echoes one DT_STRING input `s` as `s_out`.
    EchoString,
}
