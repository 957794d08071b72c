//! Which ticket class each seat of the venue belongs to, and the seats' inventory order.
//!
//! Every seat belongs to exactly one class: the first class (in request order) whose
//! `sections` name the seat's section; the first class without `sections` takes whatever is
//! left. The order is a contract with the holds code (best-available walks it):
//!
//! - `idx` is dense, `0..capacity`, assigned class by class in position order; within a class
//!   by the class's section order (its `sections` list; for the catch-all class the venue's
//!   order), then `row_no`, then `seat_no` (then label, only to make ties deterministic). Each
//!   class is therefore one contiguous range of `idx`.
//! - `row_rank` is the 0-based rank of the seat's (section, row) within its class, in that
//!   same order: it restarts at 0 for every class.
//!
//! Pure code, no I/O: unit-tested here, used by `events::create`.

use std::collections::HashMap;

use crate::venues::layout::Expanded;

/// Why the classes do not cover the venue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("class {class:?} names section {section:?}, which the venue does not have")]
    UnknownSection { class: String, section: String },
    #[error("class {class:?} names section {section:?} twice")]
    RepeatedSection { class: String, section: String },
    #[error("no class takes the seats of section(s) {}; add them to a class, or add a class without sections to take the rest", .0.join(", "))]
    SeatsWithoutClass(Vec<String>),
    #[error("class {0:?} gets no seat: its sections are all taken by earlier classes")]
    EmptyClass(String),
}

/// A class as the plan needs it.
#[derive(Debug, Clone)]
pub struct ClassSpec {
    pub name: String,
    /// Empty: takes the seats no earlier-listed section claims.
    pub sections: Vec<String>,
}

/// One seat of the event, in `idx` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedSeat {
    /// Index into `Expanded::seats`.
    pub seat: usize,
    /// Index into the classes, i.e. the class's position.
    pub class: usize,
    pub idx: i32,
    pub row_rank: i32,
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// Per class (by position): the sections it got, in its best-first order.
    pub class_sections: Vec<Vec<String>>,
    /// Per class: how many seats it got.
    pub class_capacity: Vec<usize>,
    /// Every seat of the venue, sorted by `idx` (so `seats[i].idx == i`).
    pub seats: Vec<PlannedSeat>,
}

/// Assigns every seat of `venue` to one of `classes` and orders them.
pub fn plan(venue: &Expanded, classes: &[ClassSpec]) -> Result<Plan, PlanError> {
    let section_index: HashMap<&str, usize> = venue
        .sections
        .iter()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    let mut owner: Vec<Option<usize>> = vec![None; venue.sections.len()];
    // Per class, the venue section indices it owns, in its order.
    let mut owned: Vec<Vec<usize>> = vec![Vec::new(); classes.len()];
    for (class, spec) in classes.iter().enumerate() {
        let mut named = Vec::with_capacity(spec.sections.len());
        for section in &spec.sections {
            let &index =
                section_index
                    .get(section.as_str())
                    .ok_or_else(|| PlanError::UnknownSection {
                        class: spec.name.clone(),
                        section: section.clone(),
                    })?;
            if named.contains(&index) {
                return Err(PlanError::RepeatedSection {
                    class: spec.name.clone(),
                    section: section.clone(),
                });
            }
            named.push(index);
            if owner[index].is_none() {
                owner[index] = Some(class);
                owned[class].push(index);
            }
        }
    }
    let catch_all = classes.iter().position(|spec| spec.sections.is_empty());
    let leftover: Vec<usize> = (0..venue.sections.len())
        .filter(|&i| owner[i].is_none())
        .collect();
    match catch_all {
        Some(class) => owned[class].extend(leftover),
        None if !leftover.is_empty() => {
            return Err(PlanError::SeatsWithoutClass(
                leftover
                    .iter()
                    .map(|&i| venue.sections[i].clone())
                    .collect(),
            ));
        }
        None => {}
    }

    let mut by_section: Vec<Vec<usize>> = vec![Vec::new(); venue.sections.len()];
    for (i, seat) in venue.seats.iter().enumerate() {
        by_section[seat.section].push(i);
    }
    for members in &mut by_section {
        members.sort_by(|&a, &b| {
            let (a, b) = (&venue.seats[a], &venue.seats[b]);
            (a.row_no, a.seat_no)
                .cmp(&(b.row_no, b.seat_no))
                .then_with(|| a.label.cmp(&b.label))
        });
    }

    let mut seats = Vec::with_capacity(venue.seats.len());
    let mut class_capacity = vec![0; classes.len()];
    for (class, sections) in owned.iter().enumerate() {
        let mut row_rank: i32 = -1;
        for &section in sections {
            let mut row = None;
            for &seat in &by_section[section] {
                let row_no = venue.seats[seat].row_no;
                if row != Some(row_no) {
                    row = Some(row_no);
                    row_rank += 1;
                }
                seats.push(PlannedSeat {
                    seat,
                    class,
                    // A venue has at most 200,000 seats.
                    idx: seats.len() as i32,
                    row_rank,
                });
                class_capacity[class] += 1;
            }
        }
        if class_capacity[class] == 0 {
            return Err(PlanError::EmptyClass(classes[class].name.clone()));
        }
    }
    Ok(Plan {
        class_sections: owned
            .iter()
            .map(|sections| {
                sections
                    .iter()
                    .map(|&i| venue.sections[i].clone())
                    .collect()
            })
            .collect(),
        class_capacity,
        seats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venues::layout::{LayoutInput, SvgSeatInput};

    fn grid(sections: &[(&str, i64, i64)]) -> Expanded {
        LayoutInput::grid(sections).parse().expect("valid").expand()
    }

    fn class(name: &str, sections: &[&str]) -> ClassSpec {
        ClassSpec {
            name: name.into(),
            sections: sections.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn labels(venue: &Expanded, plan: &Plan) -> Vec<(String, usize, i32, i32)> {
        plan.seats
            .iter()
            .map(|s| {
                (
                    venue.seats[s.seat].label.clone(),
                    s.class,
                    s.idx,
                    s.row_rank,
                )
            })
            .collect()
    }

    #[test]
    fn classes_take_their_sections_and_the_catch_all_takes_the_rest_in_venue_order() {
        let venue = grid(&[("A", 2, 2), ("B", 2, 2), ("C", 1, 2)]);
        let plan = plan(&venue, &[class("VIP", &["B"]), class("Normal", &[])]).expect("plan");
        assert_eq!(plan.class_sections, [vec!["B"], vec!["A", "C"]]);
        assert_eq!(plan.class_capacity, [4, 6]);
        let expected: Vec<(String, usize, i32, i32)> = [
            ("B-1-1", 0, 0),
            ("B-1-2", 0, 0),
            ("B-2-1", 0, 1),
            ("B-2-2", 0, 1),
            ("A-1-1", 1, 0),
            ("A-1-2", 1, 0),
            ("A-2-1", 1, 1),
            ("A-2-2", 1, 1),
            ("C-1-1", 1, 2),
            ("C-1-2", 1, 2),
        ]
        .iter()
        .enumerate()
        .map(|(idx, &(label, class, rank))| (label.to_string(), class, idx as i32, rank))
        .collect();
        assert_eq!(labels(&venue, &plan), expected);
    }

    #[test]
    fn a_class_walks_its_sections_in_its_own_order() {
        let venue = grid(&[("A", 1, 2), ("B", 1, 1), ("C", 1, 1)]);
        let plan = plan(&venue, &[class("All", &["C", "A", "B"])]).expect("plan");
        let order: Vec<String> = labels(&venue, &plan).into_iter().map(|l| l.0).collect();
        assert_eq!(order, ["C-1-1", "A-1-1", "A-1-2", "B-1-1"]);
        let ranks: Vec<i32> = plan.seats.iter().map(|s| s.row_rank).collect();
        assert_eq!(ranks, [0, 1, 1, 2]);
    }

    #[test]
    fn the_first_class_naming_a_section_wins_it() {
        let venue = grid(&[("A", 1, 1), ("B", 1, 1)]);
        let plan = plan(&venue, &[class("One", &["A"]), class("Two", &["A", "B"])]).expect("plan");
        assert_eq!(plan.class_sections, [vec!["A"], vec!["B"]]);
        // Two names only A, which One already has: it gets nothing.
        assert_eq!(
            super::plan(&venue, &[class("One", &["A", "B"]), class("Two", &["A"])]).err(),
            Some(PlanError::EmptyClass("Two".into()))
        );
    }

    #[test]
    fn coverage_mistakes_are_named() {
        let venue = grid(&[("A", 1, 1), ("B", 1, 1)]);
        assert_eq!(
            plan(&venue, &[class("One", &["A"])]).err(),
            Some(PlanError::SeatsWithoutClass(vec!["B".into()]))
        );
        assert_eq!(
            plan(&venue, &[class("One", &["Z"]), class("Rest", &[])]).err(),
            Some(PlanError::UnknownSection {
                class: "One".into(),
                section: "Z".into()
            })
        );
        assert_eq!(
            plan(&venue, &[class("One", &["A", "A"]), class("Rest", &[])]).err(),
            Some(PlanError::RepeatedSection {
                class: "One".into(),
                section: "A".into()
            })
        );
        // A second catch-all gets nothing: the first took the rest.
        assert_eq!(
            plan(&venue, &[class("Rest", &[]), class("More", &[])]).err(),
            Some(PlanError::EmptyClass("More".into()))
        );
        // A catch-all with nothing left is empty too.
        assert_eq!(
            plan(&venue, &[class("One", &["A", "B"]), class("Rest", &[])]).err(),
            Some(PlanError::EmptyClass("Rest".into()))
        );
    }

    #[test]
    fn svg_seats_order_by_row_then_seat_and_unnumbered_seats_share_row_zero() {
        let seat = |label: &str, x: f64, y: f64| SvgSeatInput {
            label: label.into(),
            x,
            y,
            section: None,
        };
        let venue = LayoutInput::Svg {
            svg: "<svg/>".into(),
            seats: vec![
                seat("F-2-1", 0.0, 0.0),
                seat("F-1-2", 0.0, 0.0),
                seat("F-1-1", 0.0, 0.0),
                seat("F-box", 9.0, 9.0),
            ],
        }
        .parse()
        .expect("valid")
        .expand();
        let plan = plan(&venue, &[class("All", &[])]).expect("plan");
        let got: Vec<(String, i32)> = labels(&venue, &plan)
            .into_iter()
            .map(|(label, _, _, rank)| (label, rank))
            .collect();
        assert_eq!(
            got,
            [
                ("F-box".to_string(), 0),
                ("F-1-1".to_string(), 1),
                ("F-1-2".to_string(), 1),
                ("F-2-1".to_string(), 2)
            ]
        );
    }
}
