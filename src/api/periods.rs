use super::ApiError;
use super::resource::Resource;
use crate::app::App;
use crate::domain::{Id, Period, PeriodInput, Scope};
use crate::store::Page;

pub struct Periods;

impl Resource for Periods {
    type Repr = Period;
    type Input = PeriodInput;
    type Created = Period;
    const READ: Scope = Scope::ConfigRead;
    const WRITE: Scope = Scope::ConfigWrite;

    fn to_input(repr: &Period) -> PeriodInput {
        repr.to_input()
    }

    async fn list(app: &App, after: Id, limit: usize) -> Result<Page<Period>, ApiError> {
        Ok(app.store().list_periods(after, limit).await?)
    }

    async fn get(app: &App, id: Id) -> Result<Period, ApiError> {
        Ok(app.store().get_period(id).await?)
    }

    async fn create(app: &App, input: PeriodInput) -> Result<Period, ApiError> {
        input.validate()?;
        let done = app.store().create_period(&input).await?;
        app.numbering_plan_changed();
        Ok(done)
    }

    async fn replace(app: &App, id: Id, input: PeriodInput) -> Result<Period, ApiError> {
        input.validate()?;
        let done = app.store().replace_period(id, &input).await?;
        app.numbering_plan_changed();
        Ok(done)
    }

    async fn delete(app: &App, id: Id) -> Result<(), ApiError> {
        app.store().delete_period(id).await?;
        app.numbering_plan_changed();
        Ok(())
    }
}
