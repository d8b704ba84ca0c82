//! ACL rules. Every change reloads the cached rules, so the API guard and
//! the SIP listener apply it to the very next request or packet.

use super::ApiError;
use super::resource::Resource;
use crate::app::App;
use crate::domain::{AclRule, AclRuleInput, Id, Scope};
use crate::store::Page;

pub struct Acl;

impl Resource for Acl {
    type Repr = AclRule;
    type Input = AclRuleInput;
    type Created = AclRule;
    const READ: Scope = Scope::ConfigRead;
    const WRITE: Scope = Scope::ConfigWrite;

    fn to_input(repr: &AclRule) -> AclRuleInput {
        repr.to_input()
    }

    async fn list(app: &App, after: Id, limit: usize) -> Result<Page<AclRule>, ApiError> {
        Ok(app.store().list_acl_rules(after, limit).await?)
    }

    async fn get(app: &App, id: Id) -> Result<AclRule, ApiError> {
        Ok(app.store().get_acl_rule(id).await?)
    }

    async fn create(app: &App, input: AclRuleInput) -> Result<AclRule, ApiError> {
        input.validate()?;
        let rule = app.store().create_acl_rule(&input).await?;
        app.reload_acl().await?;
        Ok(rule)
    }

    async fn replace(app: &App, id: Id, input: AclRuleInput) -> Result<AclRule, ApiError> {
        input.validate()?;
        let rule = app.store().replace_acl_rule(id, &input).await?;
        app.reload_acl().await?;
        Ok(rule)
    }

    async fn delete(app: &App, id: Id) -> Result<(), ApiError> {
        app.store().delete_acl_rule(id).await?;
        app.reload_acl().await?;
        Ok(())
    }
}
