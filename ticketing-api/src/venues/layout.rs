//! A venue's layout: a grid of sections, or an SVG drawing with positioned seats. Parsed once
//! when the venue is created ([`LayoutInput::parse`]) into a [`Layout`] that is stored as is
//! and trusted afterwards; [`Layout::expand`] turns it into the venue's seats.
//!
//! Seat labels are `SECTION-ROW-SEAT` for grids, so a section name never contains `-`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{VenueError, svg};

/// At most this many sections in a grid.
pub const MAX_GRID_SECTIONS: usize = 50;
/// At most this many rows per grid section, and seats per row.
pub const MAX_GRID_ROWS: i64 = 1000;
pub const MAX_GRID_SEATS_PER_ROW: i64 = 1000;
/// At most this many seats in a venue.
pub const MAX_CAPACITY: i64 = 200_000;
/// At most this many seats in an SVG layout.
pub const MAX_SVG_SEATS: usize = 100_000;
/// At most this many distinct sections in an SVG layout.
pub const MAX_SVG_SECTIONS: usize = 500;
/// The SVG document itself, in bytes.
pub const MAX_SVG_BYTES: usize = 512 * 1024;
/// Seat coordinates lie in `0..=MAX_COORDINATE`.
pub const MAX_COORDINATE: f64 = 1e6;
/// Vertical gap, in rows, between two stacked grid sections.
const GRID_SECTION_GAP: i64 = 2;

/// A layout as the client sends it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LayoutInput {
    /// Sections of `rows` × `seats_per_row` seats, stacked top to bottom in this order.
    Grid { sections: Vec<GridSectionInput> },
    /// An SVG drawing (checked against an allow-list) and the seats drawn on it.
    Svg {
        svg: String,
        seats: Vec<SvgSeatInput>,
    },
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct GridSectionInput {
    /// 1 to 20 of `A-Z a-z 0-9 _`, unique in the venue.
    pub name: String,
    /// 1 to 1000.
    pub rows: i64,
    /// 1 to 1000.
    pub seats_per_row: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SvgSeatInput {
    /// 1 to 40 of `A-Z a-z 0-9 _ -`, unique in the venue. `X-<row>-<seat>` gives row and seat
    /// numbers.
    pub label: String,
    pub x: f64,
    pub y: f64,
    /// Defaults to the label's part before the first `-`.
    #[serde(default)]
    pub section: Option<String>,
}

/// A checked layout, as stored in `venues.layout` and shown to the venue's owner.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Layout {
    Grid { sections: Vec<GridSection> },
    Svg { svg: String, seats: Vec<SvgSeat> },
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GridSection {
    pub name: String,
    pub rows: i32,
    pub seats_per_row: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SvgSeat {
    pub label: String,
    pub x: f64,
    pub y: f64,
    /// Always set once checked.
    pub section: String,
}

/// One seat of a venue, before it belongs to an event.
#[derive(Debug, Clone, PartialEq)]
pub struct VenueSeat {
    pub label: String,
    /// Index into [`Expanded::sections`].
    pub section: usize,
    pub row_no: i32,
    pub seat_no: i32,
    pub x: f32,
    pub y: f32,
}

/// A venue's seats, and its sections in the venue's own order (grid order, or order of first
/// appearance in an SVG layout's seat list).
#[derive(Debug, Clone)]
pub struct Expanded {
    pub sections: Vec<String>,
    pub seats: Vec<VenueSeat>,
}

/// Section names: 1 to 20 of `A-Z a-z 0-9 _`.
pub fn is_section_name(name: &str) -> bool {
    (1..=20).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_seat_label(label: &str) -> bool {
    (1..=40).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn invalid(message: impl Into<String>) -> VenueError {
    VenueError::InvalidLayout(message.into())
}

impl LayoutInput {
    /// Checks every limit and, for SVG, the drawing's safety; fills in SVG seat sections.
    pub fn parse(self) -> Result<Layout, VenueError> {
        match self {
            Self::Grid { sections } => parse_grid(sections),
            Self::Svg { svg, seats } => parse_svg(svg, seats),
        }
    }
}

fn parse_grid(sections: Vec<GridSectionInput>) -> Result<Layout, VenueError> {
    if sections.is_empty() || sections.len() > MAX_GRID_SECTIONS {
        return Err(invalid(format!(
            "A grid has 1 to {MAX_GRID_SECTIONS} sections."
        )));
    }
    let mut seen = std::collections::HashSet::new();
    let mut capacity: i64 = 0;
    let mut checked = Vec::with_capacity(sections.len());
    for section in sections {
        if !is_section_name(&section.name) {
            return Err(invalid(format!(
                "Section name {:?}: 1 to 20 letters, digits or `_`.",
                section.name
            )));
        }
        if !seen.insert(section.name.clone()) {
            return Err(invalid(format!(
                "Section {:?} appears twice.",
                section.name
            )));
        }
        if !(1..=MAX_GRID_ROWS).contains(&section.rows) {
            return Err(invalid(format!(
                "Section {}: rows is 1 to {MAX_GRID_ROWS}.",
                section.name
            )));
        }
        if !(1..=MAX_GRID_SEATS_PER_ROW).contains(&section.seats_per_row) {
            return Err(invalid(format!(
                "Section {}: seats_per_row is 1 to {MAX_GRID_SEATS_PER_ROW}.",
                section.name
            )));
        }
        capacity += section.rows * section.seats_per_row;
        checked.push(GridSection {
            name: section.name,
            // Both are at most 1000 (checked above).
            rows: section.rows as i32,
            seats_per_row: section.seats_per_row as i32,
        });
    }
    if capacity > MAX_CAPACITY {
        return Err(invalid(format!(
            "A venue has at most {MAX_CAPACITY} seats; this grid has {capacity}."
        )));
    }
    Ok(Layout::Grid { sections: checked })
}

fn parse_svg(svg: String, seats: Vec<SvgSeatInput>) -> Result<Layout, VenueError> {
    if svg.len() > MAX_SVG_BYTES {
        return Err(invalid(format!(
            "The SVG has at most {} KiB.",
            MAX_SVG_BYTES / 1024
        )));
    }
    if seats.is_empty() || seats.len() > MAX_SVG_SEATS {
        return Err(invalid(format!(
            "An SVG layout has 1 to {MAX_SVG_SEATS} seats."
        )));
    }
    let mut labels = std::collections::HashSet::with_capacity(seats.len());
    let mut sections = std::collections::HashSet::new();
    let mut checked = Vec::with_capacity(seats.len());
    for seat in seats {
        if !is_seat_label(&seat.label) {
            return Err(invalid(format!(
                "Seat label {:?}: 1 to 40 letters, digits, `_` or `-`.",
                seat.label
            )));
        }
        if !labels.insert(seat.label.clone()) {
            return Err(invalid(format!("Seat {:?} appears twice.", seat.label)));
        }
        for (axis, value) in [("x", seat.x), ("y", seat.y)] {
            if !value.is_finite() || !(0.0..=MAX_COORDINATE).contains(&value) {
                return Err(invalid(format!(
                    "Seat {}: {axis} is a number from 0 to {MAX_COORDINATE}.",
                    seat.label
                )));
            }
        }
        let section = match seat.section {
            Some(section) => section,
            None => seat.label.split('-').next().unwrap_or_default().to_string(),
        };
        if !is_section_name(&section) {
            return Err(invalid(format!(
                "Seat {}: section {section:?} is not 1 to 20 letters, digits or `_`.",
                seat.label
            )));
        }
        if sections.len() < MAX_SVG_SECTIONS || sections.contains(&section) {
            sections.insert(section.clone());
        } else {
            return Err(invalid(format!(
                "An SVG layout has at most {MAX_SVG_SECTIONS} sections."
            )));
        }
        checked.push(SvgSeat {
            label: seat.label,
            x: seat.x,
            y: seat.y,
            section,
        });
    }
    // Last: the most expensive check, on input that passed the cheap ones.
    svg::check(&svg)?;
    Ok(Layout::Svg {
        svg,
        seats: checked,
    })
}

impl Layout {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Grid { .. } => "grid",
            Self::Svg { .. } => "svg",
        }
    }

    /// How many seats the venue has.
    pub fn capacity(&self) -> i64 {
        match self {
            Self::Grid { sections } => sections
                .iter()
                .map(|s| i64::from(s.rows) * i64::from(s.seats_per_row))
                .sum(),
            Self::Svg { seats, .. } => seats.len() as i64,
        }
    }

    /// Section names in the venue's order.
    pub fn sections(&self) -> Vec<String> {
        match self {
            Self::Grid { sections } => sections.iter().map(|s| s.name.clone()).collect(),
            Self::Svg { seats, .. } => {
                let mut seen = std::collections::HashSet::new();
                seats
                    .iter()
                    .filter(|seat| seen.insert(seat.section.as_str()))
                    .map(|seat| seat.section.clone())
                    .collect()
            }
        }
    }

    /// Every seat of the venue.
    ///
    /// Grid seats are `SECTION-ROW-SEAT`, rows and seats from 1, drawn at x = seat number and
    /// y = row number plus the rows of the sections above and a gap, so sections stack.
    /// SVG seats named `X-<row>-<seat>` (both positive) take those numbers; the others are in
    /// row 0 and numbered 1, 2, ... within their section in (y, x) order.
    pub fn expand(&self) -> Expanded {
        let sections = self.sections();
        match self {
            Self::Grid { sections: grid } => {
                let capacity = usize::try_from(self.capacity()).unwrap_or_default();
                let mut seats = Vec::with_capacity(capacity);
                let mut top: i64 = 0;
                for (index, section) in grid.iter().enumerate() {
                    for row in 1..=section.rows {
                        for seat in 1..=section.seats_per_row {
                            seats.push(VenueSeat {
                                label: format!("{}-{row}-{seat}", section.name),
                                section: index,
                                row_no: row,
                                seat_no: seat,
                                x: seat as f32,
                                y: (top + i64::from(row)) as f32,
                            });
                        }
                    }
                    top += i64::from(section.rows) + GRID_SECTION_GAP;
                }
                Expanded { sections, seats }
            }
            Self::Svg {
                seats: svg_seats, ..
            } => {
                let index: std::collections::HashMap<&str, usize> = sections
                    .iter()
                    .enumerate()
                    .map(|(i, name)| (name.as_str(), i))
                    .collect();
                let mut seats: Vec<VenueSeat> = svg_seats
                    .iter()
                    .map(|seat| {
                        let (row_no, seat_no) = row_and_seat(&seat.label).unwrap_or((0, 0));
                        VenueSeat {
                            label: seat.label.clone(),
                            section: index[seat.section.as_str()],
                            row_no,
                            seat_no,
                            x: seat.x as f32,
                            y: seat.y as f32,
                        }
                    })
                    .collect();
                number_unlabelled_seats(svg_seats, &mut seats, sections.len());
                Expanded { sections, seats }
            }
        }
    }
}

/// `X-<row>-<seat>` with both numbers positive (and small enough for Postgres `integer`).
fn row_and_seat(label: &str) -> Option<(i32, i32)> {
    let mut parts = label.split('-');
    let (_, row, seat) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let number = |s: &str| -> Option<i32> {
        if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().filter(|n| *n > 0)
    };
    Some((number(row)?, number(seat)?))
}

/// Seats without row/seat numbers in their label get their ordinal (from 1) within their
/// section, the section's seats taken in (y, x, label) order.
fn number_unlabelled_seats(input: &[SvgSeat], seats: &mut [VenueSeat], sections: usize) {
    let mut by_section: Vec<Vec<usize>> = vec![Vec::new(); sections];
    for (i, seat) in seats.iter().enumerate() {
        by_section[seat.section].push(i);
    }
    for members in &mut by_section {
        if members.iter().all(|&i| seats[i].row_no != 0) {
            continue;
        }
        members.sort_by(|&a, &b| {
            input[a]
                .y
                .total_cmp(&input[b].y)
                .then(input[a].x.total_cmp(&input[b].x))
                .then_with(|| input[a].label.cmp(&input[b].label))
        });
        for (ordinal, &i) in members.iter().enumerate() {
            if seats[i].row_no == 0 {
                seats[i].seat_no = i32::try_from(ordinal + 1).unwrap_or(i32::MAX);
            }
        }
    }
}

#[cfg(test)]
impl LayoutInput {
    /// A grid of `(name, rows, seats_per_row)` sections, for tests here and in `events`.
    pub(crate) fn grid(sections: &[(&str, i64, i64)]) -> Self {
        Self::Grid {
            sections: sections
                .iter()
                .map(|&(name, rows, seats_per_row)| GridSectionInput {
                    name: name.into(),
                    rows,
                    seats_per_row,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svg_seat(label: &str, x: f64, y: f64) -> SvgSeatInput {
        SvgSeatInput {
            label: label.into(),
            x,
            y,
            section: None,
        }
    }

    #[test]
    fn grid_seats_are_labelled_section_row_seat_and_sections_stack() {
        let layout = LayoutInput::grid(&[("A", 2, 3), ("B", 1, 2)])
            .parse()
            .expect("valid");
        assert_eq!(layout.capacity(), 8);
        let expanded = layout.expand();
        assert_eq!(expanded.sections, ["A", "B"]);
        let labels: Vec<&str> = expanded.seats.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "A-1-1", "A-1-2", "A-1-3", "A-2-1", "A-2-2", "A-2-3", "B-1-1", "B-1-2"
            ]
        );
        let b = &expanded.seats[7];
        assert_eq!((b.section, b.row_no, b.seat_no), (1, 1, 2));
        // Section B starts below A's two rows and a gap of two.
        assert_eq!((b.x, b.y), (2.0, 5.0));
    }

    #[test]
    fn grid_limits_are_enforced() {
        let too_many: Vec<(String, i64, i64)> = (0..51).map(|i| (format!("S{i}"), 1, 1)).collect();
        let too_many: Vec<(&str, i64, i64)> = too_many
            .iter()
            .map(|(n, r, s)| (n.as_str(), *r, *s))
            .collect();
        for bad in [
            LayoutInput::grid(&[]),
            LayoutInput::grid(&too_many),
            LayoutInput::grid(&[("A-1", 1, 1)]),
            LayoutInput::grid(&[("", 1, 1)]),
            LayoutInput::grid(&[("ÄÖ", 1, 1)]),
            LayoutInput::grid(&[("A", 1, 1), ("A", 1, 1)]),
            LayoutInput::grid(&[("A", 0, 1)]),
            LayoutInput::grid(&[("A", 1, 1001)]),
            LayoutInput::grid(&[("A", -1, 5)]),
            // 201 × 1000 > 200,000.
            LayoutInput::grid(&[("A", 1000, 201)]),
        ] {
            assert!(
                matches!(bad.clone().parse(), Err(VenueError::InvalidLayout(_))),
                "{bad:?} should be refused"
            );
        }
        assert!(LayoutInput::grid(&[("A", 1000, 200)]).parse().is_ok());
    }

    #[test]
    fn svg_seats_take_row_and_seat_from_labels_or_their_order() {
        let layout = LayoutInput::Svg {
            svg: "<svg xmlns=\"http://www.w3.org/2000/svg\"/>".into(),
            seats: vec![
                svg_seat("FLOOR-2-7", 10.0, 20.0),
                svg_seat("BOX_b", 5.0, 9.0),
                svg_seat("BOX_a", 1.0, 9.0),
                svg_seat("BOX_c", 0.0, 3.0),
                SvgSeatInput {
                    section: Some("BOX".into()),
                    ..svg_seat("B-9-9", 0.0, 0.0)
                },
            ],
        }
        .parse()
        .expect("valid");
        let expanded = layout.expand();
        // Labels without a `-` are their own section name.
        assert_eq!(
            expanded.sections,
            ["FLOOR", "BOX_b", "BOX_a", "BOX_c", "BOX"]
        );
        let numbers: Vec<(usize, i32, i32)> = expanded
            .seats
            .iter()
            .map(|s| (s.section, s.row_no, s.seat_no))
            .collect();
        assert_eq!(
            numbers,
            [(0, 2, 7), (1, 0, 1), (2, 0, 1), (3, 0, 1), (4, 9, 9)]
        );
    }

    #[test]
    fn svg_seats_without_numbers_are_numbered_by_y_then_x() {
        let seats = ["S-a", "S-b", "S-c", "S-1-x"]
            .iter()
            .zip([(5.0, 1.0), (1.0, 2.0), (2.0, 1.0), (0.0, 0.0)])
            .map(|(label, (x, y))| svg_seat(label, x, y))
            .collect();
        let layout = LayoutInput::Svg {
            svg: "<svg/>".into(),
            seats,
        }
        .parse()
        .expect("valid");
        let numbers: Vec<i32> = layout.expand().seats.iter().map(|s| s.seat_no).collect();
        // (y, x): S-1-x (0,0) first, then S-c (1,2), S-a (1,5), S-b (2,1).
        assert_eq!(numbers, [3, 4, 2, 1]);
    }

    #[test]
    fn svg_seat_limits_are_enforced() {
        let svg = || "<svg/>".to_string();
        for seats in [
            vec![],
            vec![svg_seat("", 1.0, 1.0)],
            vec![svg_seat("A B", 1.0, 1.0)],
            vec![svg_seat(&"a".repeat(41), 1.0, 1.0)],
            vec![svg_seat("A-1", 1.0, 1.0), svg_seat("A-1", 2.0, 2.0)],
            vec![svg_seat("A-1", -1.0, 1.0)],
            vec![svg_seat("A-1", 1.0, 1e7)],
            vec![svg_seat("A-1", f64::NAN, 1.0)],
            vec![svg_seat("-1", 1.0, 1.0)],
            vec![SvgSeatInput {
                section: Some("bad-section".into()),
                ..svg_seat("A-1", 1.0, 1.0)
            }],
        ] {
            let input = LayoutInput::Svg { svg: svg(), seats };
            assert!(
                matches!(input.clone().parse(), Err(VenueError::InvalidLayout(_))),
                "{input:?} should be refused"
            );
        }
        let huge = LayoutInput::Svg {
            svg: format!("<svg>{}</svg>", " ".repeat(MAX_SVG_BYTES)),
            seats: vec![svg_seat("A-1-1", 1.0, 1.0)],
        };
        assert!(matches!(huge.parse(), Err(VenueError::InvalidLayout(_))));
    }

    #[test]
    fn only_dash_free_numbers_make_rows_and_seats() {
        assert_eq!(row_and_seat("A-3-7"), Some((3, 7)));
        assert_eq!(row_and_seat("A-0-7"), None);
        assert_eq!(row_and_seat("A-3"), None);
        assert_eq!(row_and_seat("A-3-7-1"), None);
        assert_eq!(row_and_seat("A-+3-7"), None);
        assert_eq!(row_and_seat("A-9999999999-1"), None);
    }
}
