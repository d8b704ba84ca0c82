//! Placeholder (calls-api branch).
