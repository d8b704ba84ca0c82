//! Holidays (*feriados*): a holiday closes its period (or every period) for
//! the whole day.

use chrono::NaiveDate;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldErrors;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Holiday {
    pub id: i64,
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    pub name: String,
    /// Absent = every period.
    pub period_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HolidayInput {
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    pub name: String,
    #[serde(default)]
    pub period_id: Option<i64>,
}

impl HolidayInput {
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut e = FieldErrors::new();
        e.name("name", &self.name, 80);
        e.into_result()
    }
}

impl Holiday {
    pub fn to_input(&self) -> HolidayInput {
        HolidayInput {
            date: self.date,
            name: self.name.clone(),
            period_id: self.period_id,
        }
    }
}
