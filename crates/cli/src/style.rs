//! Colour and glyphs: colour and Unicode on a terminal, plain ASCII text into a pipe or a file,
//! so `failup list | grep` and scripts see the same bytes on every machine.

use anstyle::{Ansi256Color, AnsiColor, Color, Effects};

use crate::config::ColorChoice;

/// What a piece of text is, which decides its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// An entry id.
    Id,
    /// A heading.
    Heading,
    /// An open loop.
    Open,
    /// A closed loop.
    Closed,
    /// A macro setback.
    Macro,
    /// A tag.
    Tag,
    /// Less important text.
    Dim,
    /// One of the heatmap's five levels, 0 (nothing) to 4 (busiest).
    Level(u8),
}

/// How output is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours and effects.
    pub color: bool,
    /// Unicode blocks and lines; ASCII otherwise.
    pub unicode: bool,
}

/// Heatmap cells from empty to busiest.
const CELLS_UNICODE: [&str; 5] = ["·", "░", "▒", "▓", "█"];
const CELLS_ASCII: [&str; 5] = [".", "-", "+", "*", "#"];
/// The greens of a contribution graph, dark to bright.
const GREENS: [u8; 4] = [22, 28, 34, 40];

impl Style {
    /// Plain ASCII, no colour: what pipes and files get.
    pub const PLAIN: Style = Style {
        color: false,
        unicode: false,
    };

    /// Decides from the setting, `NO_COLOR` and whether standard output is a terminal.
    /// `always` means colour and Unicode even into a pipe, for `less -R`.
    pub fn detect(choice: ColorChoice, no_color: bool, terminal: bool) -> Style {
        match choice {
            ColorChoice::Always => Style {
                color: true,
                unicode: true,
            },
            ColorChoice::Never => Style {
                color: false,
                unicode: terminal,
            },
            ColorChoice::Auto if !terminal => Style::PLAIN,
            ColorChoice::Auto => Style {
                color: terminal && !no_color,
                unicode: terminal,
            },
        }
    }

    /// `text` coloured for `role`, or as it is without colour.
    pub fn paint(&self, role: Role, text: &str) -> String {
        if !self.color || text.is_empty() {
            return text.to_owned();
        }
        let fg = |c: AnsiColor| anstyle::Style::new().fg_color(Some(Color::Ansi(c)));
        let style = match role {
            Role::Id => fg(AnsiColor::Yellow),
            Role::Heading => anstyle::Style::new().effects(Effects::BOLD),
            Role::Open => fg(AnsiColor::Magenta),
            Role::Closed => fg(AnsiColor::Green),
            Role::Macro => fg(AnsiColor::Red).effects(Effects::BOLD),
            Role::Tag => fg(AnsiColor::Cyan),
            Role::Dim => anstyle::Style::new().effects(Effects::DIMMED),
            Role::Level(0) => anstyle::Style::new().effects(Effects::DIMMED),
            Role::Level(n) => anstyle::Style::new().fg_color(Some(Color::Ansi256(Ansi256Color(
                GREENS[usize::from(n.min(4)) - 1],
            )))),
        };
        format!("{}{text}{}", style.render(), style.render_reset())
    }

    /// One heatmap cell at `level` (0 to 4).
    pub fn cell(&self, level: u8) -> String {
        let cells = if self.unicode {
            CELLS_UNICODE
        } else {
            CELLS_ASCII
        };
        self.paint(Role::Level(level), cells[usize::from(level.min(4))])
    }

    /// A bar of `len` cells for bar charts.
    pub fn bar(&self, len: usize) -> String {
        self.paint(
            Role::Level(4),
            &(if self.unicode { "█" } else { "#" }).repeat(len),
        )
    }

    /// The vertical rule beside a chart's labels.
    pub fn rule(&self) -> &'static str {
        if self.unicode { "│" } else { "|" }
    }

    /// Ellipsis for shortened text.
    pub fn ellipsis(&self) -> &'static str {
        if self.unicode { "…" } else { "..." }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_get_plain_ascii_and_terminals_colour_unless_no_color() {
        assert_eq!(Style::detect(ColorChoice::Auto, false, false), Style::PLAIN);
        let tty = Style::detect(ColorChoice::Auto, false, true);
        assert!(tty.color && tty.unicode);
        let no_color = Style::detect(ColorChoice::Auto, true, true);
        assert!(!no_color.color && no_color.unicode);
        assert!(Style::detect(ColorChoice::Always, true, false).color);
        assert_eq!(Style::PLAIN.paint(Role::Id, "x"), "x");
        assert_eq!(tty.paint(Role::Id, "x"), "\u{1b}[33mx\u{1b}[0m");
    }
}
