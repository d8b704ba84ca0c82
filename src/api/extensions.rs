use super::ApiError;
use super::resource::Resource;
use crate::app::App;
use crate::domain::{Extension, ExtensionInput, Id, Scope};
use crate::store::Page;

pub struct Extensions;

impl Resource for Extensions {
    type Repr = Extension;
    type Input = ExtensionInput;
    type Created = Extension;
    const READ: Scope = Scope::ConfigRead;
    const WRITE: Scope = Scope::ConfigWrite;

    fn to_input(repr: &Extension) -> ExtensionInput {
        repr.to_input()
    }

    async fn list(app: &App, after: Id, limit: usize) -> Result<Page<Extension>, ApiError> {
        Ok(app.store().list_extensions(after, limit).await?)
    }

    async fn get(app: &App, id: Id) -> Result<Extension, ApiError> {
        Ok(app.store().get_extension(id).await?)
    }

    async fn create(app: &App, input: ExtensionInput) -> Result<Extension, ApiError> {
        input.validate(true)?;
        let defaults = &app.settings().default_digest_algorithms;
        let created = app.store().create_extension(&input, defaults).await?;
        refresh_credentials(app).await;
        Ok(created)
    }

    async fn replace(app: &App, id: Id, input: ExtensionInput) -> Result<Extension, ApiError> {
        input.validate(false)?;
        let replaced = app.store().replace_extension(id, &input).await?;
        refresh_credentials(app).await;
        Ok(replaced)
    }

    async fn delete(app: &App, id: Id) -> Result<(), ApiError> {
        app.store().delete_extension(id).await?;
        refresh_credentials(app).await;
        Ok(())
    }
}

/// Makes the registrar see the change before the API answers, so a phone
/// registering right after its extension is created is not refused; and
/// tells the AMI client its numbering plan changed.
async fn refresh_credentials(app: &App) {
    app.numbering_plan_changed();
    if let Err(e) = app.reload_credentials().await {
        tracing::warn!(error = %e, "cannot reload SIP credentials after an extension change");
    }
}
