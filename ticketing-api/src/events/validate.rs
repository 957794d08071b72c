//! The checks an event's fields pass before any database work: text lengths and characters,
//! ranges, prices, times, and the classes of a new event (names, currency, sections named).
//! What needs the database (the venue, the sale's state, sold seats) is checked where it is
//! read, in `store.rs` and `change.rs`.

use shared::{domain::Currency, ids::VenueId};
use time::OffsetDateTime;

use super::{
    ClassPrice, DEFAULT_HOLD_SECONDS, DEFAULT_MAX_SEATS_PER_ORDER, EventError, EventPatch,
    MAX_CLASSES, MAX_PRICE, NewClass, NewEvent, seating::ClassSpec,
};
use crate::venues;

fn text_field(what: &str, value: &str, min: usize, max: usize) -> Result<String, EventError> {
    let trimmed = value.trim();
    let length = trimmed.chars().count();
    // Descriptions may have line breaks; nothing else may carry control characters.
    let bad_char = trimmed
        .chars()
        .any(|c| c.is_control() && !(what == "description" && matches!(c, '\n' | '\r' | '\t')));
    if length < min || length > max || bad_char {
        return Err(EventError::InvalidField(format!(
            "The {what} has {min} to {max} characters, none of them control characters."
        )));
    }
    Ok(trimmed.to_string())
}

fn ranged(what: &str, value: i64, min: i64, max: i64) -> Result<i32, EventError> {
    if !(min..=max).contains(&value) {
        return Err(EventError::InvalidField(format!(
            "{what} is {min} to {max}."
        )));
    }
    // Every range used here fits an i32.
    Ok(value as i32)
}

fn price(value: i64) -> Result<i64, EventError> {
    if !(0..=MAX_PRICE).contains(&value) {
        return Err(EventError::InvalidField(format!(
            "A price is 0 to {MAX_PRICE} minor units."
        )));
    }
    Ok(value)
}

fn title(value: &str) -> Result<String, EventError> {
    text_field("title", value, 1, 200)
}

fn description(value: &str) -> Result<String, EventError> {
    text_field("description", value, 0, 10_000)
}

fn hold_seconds(value: i64) -> Result<i32, EventError> {
    ranged("hold_seconds", value, 30, 3600)
}

fn max_seats_per_order(value: i64) -> Result<i32, EventError> {
    ranged("max_seats_per_order", value, 1, 50)
}

fn starts_in_future(now: OffsetDateTime, starts_at: OffsetDateTime) -> Result<(), EventError> {
    if starts_at <= now {
        return Err(EventError::InvalidTime(
            "starts_at must be in the future.".into(),
        ));
    }
    Ok(())
}

/// The sale opens at the latest when the event starts. A patch may move either time, so
/// `change::update` checks this again against the stored values.
pub(super) fn opens_by_start(
    sale_opens_at: OffsetDateTime,
    starts_at: OffsetDateTime,
) -> Result<(), EventError> {
    if sale_opens_at > starts_at {
        return Err(EventError::InvalidTime(
            "sale_opens_at must be at or before starts_at.".into(),
        ));
    }
    Ok(())
}

/// A new event whose fields passed every check that needs no database.
pub(super) struct CheckedEvent {
    pub(super) title: String,
    pub(super) description: String,
    pub(super) venue_id: VenueId,
    pub(super) starts_at: OffsetDateTime,
    pub(super) sale_opens_at: OffsetDateTime,
    pub(super) hold_seconds: i32,
    pub(super) max_seats_per_order: i32,
    pub(super) currency: Currency,
    pub(super) classes: Vec<(NewClass, ClassSpec)>,
}

pub(super) fn check_new(new: NewEvent, now: OffsetDateTime) -> Result<CheckedEvent, EventError> {
    let title = title(&new.title)?;
    let description = description(new.description.as_deref().unwrap_or_default())?;
    starts_in_future(now, new.starts_at)?;
    opens_by_start(new.sale_opens_at, new.starts_at)?;
    let hold_seconds = hold_seconds(new.hold_seconds.unwrap_or(DEFAULT_HOLD_SECONDS))?;
    let max_seats_per_order = max_seats_per_order(
        new.max_seats_per_order
            .unwrap_or(DEFAULT_MAX_SEATS_PER_ORDER),
    )?;
    if new.classes.is_empty() || new.classes.len() > MAX_CLASSES {
        return Err(EventError::InvalidField(format!(
            "An event has 1 to {MAX_CLASSES} ticket classes."
        )));
    }
    let mut currency: Option<Currency> = None;
    let mut names = std::collections::HashSet::new();
    let mut classes = Vec::with_capacity(new.classes.len());
    for mut class in new.classes {
        class.name = text_field("class name", &class.name, 1, 100)?;
        if !names.insert(class.name.clone()) {
            return Err(EventError::DuplicateClass(class.name));
        }
        price(class.price)?;
        let code = Currency::parse(&class.currency).map_err(EventError::InvalidCurrency)?;
        match currency {
            None => currency = Some(code),
            Some(first) if first != code => return Err(EventError::MixedCurrencies),
            Some(_) => {}
        }
        let sections = class.sections.clone().unwrap_or_default();
        if sections.len() > venues::layout::MAX_SVG_SECTIONS {
            return Err(EventError::InvalidField(
                "A class names at most 500 sections.".into(),
            ));
        }
        let spec = ClassSpec {
            name: class.name.clone(),
            sections,
        };
        classes.push((class, spec));
    }
    Ok(CheckedEvent {
        title,
        description,
        venue_id: new.venue_id,
        starts_at: new.starts_at,
        sale_opens_at: new.sale_opens_at,
        hold_seconds,
        max_seats_per_order,
        currency: currency.ok_or_else(|| EventError::InvalidField("No classes.".into()))?,
        classes,
    })
}

/// A patch whose fields passed every check that needs no database. `None`: not sent.
pub(super) struct CheckedPatch {
    pub(super) title: Option<String>,
    pub(super) description: Option<String>,
    pub(super) hold_seconds: Option<i32>,
    pub(super) max_seats_per_order: Option<i32>,
    /// New class prices; empty when none were sent.
    pub(super) prices: Vec<ClassPrice>,
}

pub(super) fn check_patch(
    patch: &EventPatch,
    now: OffsetDateTime,
) -> Result<CheckedPatch, EventError> {
    let title = patch.title.as_deref().map(title).transpose()?;
    let description = patch.description.as_deref().map(description).transpose()?;
    let hold_seconds = patch.hold_seconds.map(hold_seconds).transpose()?;
    let max_seats_per_order = patch
        .max_seats_per_order
        .map(max_seats_per_order)
        .transpose()?;
    let prices = patch.classes.clone().unwrap_or_default();
    if prices.len() > MAX_CLASSES {
        return Err(EventError::InvalidField(format!(
            "An event has at most {MAX_CLASSES} classes."
        )));
    }
    for class in &prices {
        price(class.price)?;
    }
    if let Some(starts_at) = patch.starts_at {
        starts_in_future(now, starts_at)?;
    }
    Ok(CheckedPatch {
        title,
        description,
        hold_seconds,
        max_seats_per_order,
        prices,
    })
}
