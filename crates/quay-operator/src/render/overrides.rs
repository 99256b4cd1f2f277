//! Applies the components' overrides to the rendered objects. (Being written: see the render issue.)

use super::context::RenderContext;
use super::object::DesiredObject;
use crate::config::RenderError;

pub fn apply(_ctx: &RenderContext<'_>, _objects: &mut [DesiredObject]) -> Result<(), RenderError> {
    Ok(())
}
