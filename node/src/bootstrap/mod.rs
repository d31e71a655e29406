//! TODO(skeleton): filled by the owning helper.
