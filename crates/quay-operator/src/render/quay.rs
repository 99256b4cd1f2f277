//! The `quay` component (always managed). (Being written: see the render issue.)

use super::context::RenderContext;
use super::object::DesiredObject;

pub fn render_config_objects(_ctx: &RenderContext<'_>, _out: &mut Vec<DesiredObject>) {}

pub fn render_workloads(_ctx: &RenderContext<'_>, _out: &mut Vec<DesiredObject>) {}
