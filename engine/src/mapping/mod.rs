//! Mappings at run time: record selection and field evaluation.

pub mod selection;
