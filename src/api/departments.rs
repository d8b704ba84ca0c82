use super::ApiError;
use super::resource::Resource;
use crate::app::App;
use crate::domain::{Department, DepartmentInput, Id, Scope};
use crate::store::Page;

pub struct Departments;

impl Resource for Departments {
    type Repr = Department;
    type Input = DepartmentInput;
    type Created = Department;
    const READ: Scope = Scope::ConfigRead;
    const WRITE: Scope = Scope::ConfigWrite;

    fn to_input(repr: &Department) -> DepartmentInput {
        repr.to_input()
    }

    async fn list(app: &App, after: Id, limit: usize) -> Result<Page<Department>, ApiError> {
        Ok(app.store().list_departments(after, limit).await?)
    }

    async fn get(app: &App, id: Id) -> Result<Department, ApiError> {
        Ok(app.store().get_department(id).await?)
    }

    async fn create(app: &App, input: DepartmentInput) -> Result<Department, ApiError> {
        input.validate()?;
        let done = app.store().create_department(&input).await?;
        app.numbering_plan_changed();
        Ok(done)
    }

    async fn replace(app: &App, id: Id, input: DepartmentInput) -> Result<Department, ApiError> {
        input.validate()?;
        let done = app.store().replace_department(id, &input).await?;
        app.numbering_plan_changed();
        Ok(done)
    }

    async fn delete(app: &App, id: Id) -> Result<(), ApiError> {
        app.store().delete_department(id).await?;
        app.numbering_plan_changed();
        Ok(())
    }
}
