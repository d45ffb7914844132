//! The caller's hooks around the outputs: the tap and the observer. A hook that panics is
//! dropped and reported; the session goes on.
use std::panic::{self, AssertUnwindSafe};

use tether_core::session::Output;

use super::Driver;
use crate::hook::Tap;
use crate::report::Report;

impl Driver {
    /// Runs `f` on the tap, dropping the tap (and reporting it) if it panics.
    pub(super) fn tapped(&mut self, f: impl FnOnce(&mut dyn Tap)) {
        let Some(tap) = &mut self.tap else {
            return;
        };
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| f(tap.as_mut()))) {
            self.tap = None;
            self.reports.publish(Report::CallbackPanicked {
                message: panic_message(panic.as_ref()),
            });
        }
    }

    pub(super) fn observe(&mut self, output: &Output) {
        if self.tap.is_some() {
            let at = self.now;
            self.tapped(|tap| tap.output(at, output));
        }
        let Some(observer) = &mut self.observer else {
            return;
        };
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| observer(output))) {
            self.observer = None;
            self.reports.publish(Report::CallbackPanicked {
                message: panic_message(panic.as_ref()),
            });
        }
    }
}

/// A panic's message, if it was a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}
