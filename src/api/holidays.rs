use super::ApiError;
use super::resource::Resource;
use crate::app::App;
use crate::domain::{Holiday, HolidayInput, Id, Scope};
use crate::store::Page;

pub struct Holidays;

impl Resource for Holidays {
    type Repr = Holiday;
    type Input = HolidayInput;
    type Created = Holiday;
    const READ: Scope = Scope::ConfigRead;
    const WRITE: Scope = Scope::ConfigWrite;

    fn to_input(repr: &Holiday) -> HolidayInput {
        repr.to_input()
    }

    async fn list(app: &App, after: Id, limit: usize) -> Result<Page<Holiday>, ApiError> {
        Ok(app.store().list_holidays(after, limit).await?)
    }

    async fn get(app: &App, id: Id) -> Result<Holiday, ApiError> {
        Ok(app.store().get_holiday(id).await?)
    }

    async fn create(app: &App, input: HolidayInput) -> Result<Holiday, ApiError> {
        input.validate()?;
        let done = app.store().create_holiday(&input).await?;
        app.numbering_plan_changed();
        Ok(done)
    }

    async fn replace(app: &App, id: Id, input: HolidayInput) -> Result<Holiday, ApiError> {
        input.validate()?;
        let done = app.store().replace_holiday(id, &input).await?;
        app.numbering_plan_changed();
        Ok(done)
    }

    async fn delete(app: &App, id: Id) -> Result<(), ApiError> {
        app.store().delete_holiday(id).await?;
        app.numbering_plan_changed();
        Ok(())
    }
}
