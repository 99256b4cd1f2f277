//! The `objectstorage` component. (Being written: see the render issue.)

use super::context::RenderContext;
use super::object::DesiredObject;

pub fn render(_ctx: &RenderContext<'_>, _out: &mut Vec<DesiredObject>) {}
