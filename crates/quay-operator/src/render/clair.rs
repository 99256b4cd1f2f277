//! The `clair` component. (Being written: see the render issue.)

use super::context::RenderContext;
use super::object::DesiredObject;
use crate::config::RenderError;

pub fn render(_ctx: &RenderContext<'_>, _out: &mut Vec<DesiredObject>) -> Result<(), RenderError> {
    Ok(())
}
