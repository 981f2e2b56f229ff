//! Draws the app with ratatui: header, scrollback (plus the client sidebar in DM mode),
//! typing indicator, input line and status bar. Nothing here changes state except the
//! returned scroll limit, which the caller feeds back to the app.

mod input;
mod wrap;

#[cfg(test)]
mod tests;

use chat_core::PresenceStatus;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use unicode_width::UnicodeWidthStr;

use self::input::InputLayout;
use crate::app::entry::{Body, Entry, UNDELIVERED_MARK, clock_time, local_day};
use crate::app::view::{SidebarItem, Tone};
use crate::app::{App, Mode};

/// After a message of ours that waits for a partner whose connection is down.
const HELD_MARK: &str = "⋯";
/// Width of the DM sidebar, border included.
const SIDEBAR_WIDTH: u16 = 24;
/// Width of the `12:00 ` timestamp column (`12:00:00 ` with `/time`).
fn time_width(seconds: bool) -> usize {
    if seconds { 9 } else { 6 }
}

fn dim() -> Style {
    Style::default().fg(Color::DarkGray)
}

/// Draws the whole screen. Returns the largest useful scroll offset (rows of scrollback
/// above the view), so the app can clamp PgUp.
pub fn draw(frame: &mut Frame<'_>, app: &App) -> usize {
    let prompt = prompt(app);
    let avail = usize::from(frame.area().width).saturating_sub(prompt.width() + 1);
    let chars: Vec<char> = app.input().text().chars().collect();
    let layout = InputLayout::new(&chars, app.input().cursor().min(chars.len()), avail);
    let input_height = u16::try_from(layout.height()).unwrap_or(1);
    let [header, body, typing, input, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(input_height),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, app, header);
    let scrollback_area = match app.sidebar() {
        Some(items) => {
            let [main, side] =
                Layout::horizontal([Constraint::Min(10), Constraint::Length(SIDEBAR_WIDTH)]).areas(body);
            draw_sidebar(frame, &items, side);
            main
        }
        None => body,
    };
    let max_scroll = draw_scrollback(frame, app, scrollback_area);
    if let Some(text) = app.typing_line() {
        let style = dim().add_modifier(Modifier::ITALIC);
        frame.render_widget(Paragraph::new(Span::styled(text, style)), typing);
    }
    draw_input(frame, &prompt, &layout, chars.is_empty(), input);
    draw_status(frame, app, status);
    max_scroll
}

fn draw_header(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let style = Style::default().fg(Color::Black).bg(Color::Cyan);
    let title = format!(" {}", app.header());
    let server = format!("{} ", app.settings().server);
    let width = usize::from(area.width);
    let gap = width.saturating_sub(title.width() + server.width());
    let line = if gap >= 2 {
        Line::from(vec![Span::raw(title), Span::raw(" ".repeat(gap)), Span::raw(server)])
    } else {
        Line::from(title)
    };
    frame.render_widget(Paragraph::new(line).style(style.add_modifier(Modifier::BOLD)), area);
}

fn draw_status(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let (text, tone) = app.status();
    let style = match tone {
        Tone::Normal => Style::default().fg(Color::Black).bg(Color::Green),
        Tone::Pending => Style::default().fg(Color::Black).bg(Color::Yellow),
        Tone::Alert => Style::default().fg(Color::White).bg(Color::Red),
    };
    frame.render_widget(Paragraph::new(format!(" {text}")).style(style), area);
}

/// The entry's rows before wrapping: one `Vec<Span>` per logical line, each with the
/// indent its wrapped rows get.
fn entry_lines(
    entry: &Entry,
    offset_secs: i32,
    seconds: bool,
    held_for: Option<&str>,
) -> Vec<(Vec<Span<'static>>, usize)> {
    // Where rows after a line break start: under the text, past the time and the `* `.
    let hang = time_width(seconds) + 2;
    let time = Span::styled(format!("{} ", clock_time(entry.ts(), offset_secs, seconds)), dim());
    let indent = || Span::raw(" ".repeat(hang));
    match entry.body(offset_secs, false) {
        Body::Message { speaker, mine, text, undelivered } => {
            let colour = if mine { Color::Cyan } else { Color::Magenta };
            let speaker = Span::styled(speaker, Style::default().fg(colour).add_modifier(Modifier::BOLD));
            // A message of several lines keeps them; the later ones start under the text.
            let mut lines: Vec<(Vec<Span<'static>>, usize)> = text
                .split('\n')
                .enumerate()
                .map(|(i, line)| {
                    let line = Span::raw(line.to_owned());
                    if i == 0 {
                        (vec![time.clone(), speaker.clone(), Span::raw(": "), line], hang)
                    } else {
                        (vec![indent(), line], hang)
                    }
                })
                .collect();
            if undelivered && let Some((last, _)) = lines.last_mut() {
                last.push(Span::styled(
                    format!(" {UNDELIVERED_MARK} not delivered"),
                    Style::default().fg(Color::Red),
                ));
            } else if let Some(name) = held_for
                && let Some((last, _)) = lines.last_mut()
            {
                last.push(Span::styled(format!(" {HELD_MARK} held for {name}"), dim()));
            }
            lines
        }
        Body::System(lines) => {
            let style = Style::default().fg(Color::Yellow);
            lines
                .into_iter()
                .enumerate()
                .map(|(i, line)| {
                    // An indented item (a client, a history line) keeps its indent, and a
                    // little more, when it wraps.
                    let lead = line.chars().take_while(|c| *c == ' ').count();
                    let hang = if lead > 0 { hang + lead + 2 } else { hang };
                    if i == 0 {
                        (vec![time.clone(), Span::styled(format!("* {line}"), style)], hang)
                    } else {
                        (vec![indent(), Span::styled(line, style)], hang)
                    }
                })
                .collect()
        }
        Body::Error(message) => {
            vec![(vec![time, Span::styled(format!("! {message}"), Style::default().fg(Color::Red))], hang)]
        }
        Body::Hidden => Vec::new(),
    }
}

fn draw_scrollback(frame: &mut Frame<'_>, app: &App, area: Rect) -> usize {
    let width = usize::from(area.width);
    let height = usize::from(area.height);
    let offset = app.settings().offset_secs;
    let mut rows: Vec<Line<'static>> = Vec::new();
    let mut day: Option<String> = None;
    // Our messages since the partner's connection dropped, while it is still down, wait
    // for them: the server delivers them if they come back, or reports them undelivered.
    let away = app.partner_away();
    let mut holding = false;
    for entry in app.scrollback() {
        let held_for = match (entry, away) {
            (Entry::PartnerReconnecting { room_id, .. }, Some((room, _))) => {
                holding = **room_id == *room;
                None
            }
            (Entry::PartnerReconnected { .. }, _) => {
                holding = false;
                None
            }
            (Entry::Message { mine: true, room_id: Some(r), .. }, Some((room, name)))
                if holding && **r == *room =>
            {
                Some(name)
            }
            _ => None,
        };
        let lines = entry_lines(entry, offset, app.seconds(), held_for);
        if lines.is_empty() {
            continue; // hidden entries (typing, presence) do not count for the date line
        }
        // A date line where the day changes.
        let today = local_day(entry.ts(), offset);
        if day.as_ref().is_some_and(|d| *d != today) {
            let label = format!(" {today} ");
            let side = width.saturating_sub(label.width()) / 2;
            let rule = format!("{}{label}{}", "─".repeat(side), "─".repeat(side));
            rows.push(Line::from(Span::styled(rule, dim())));
        }
        day = Some(today);
        for (line, hang) in lines {
            rows.extend(wrap::wrap(&line, width, hang));
        }
    }
    let max_scroll = rows.len().saturating_sub(height);
    let scroll = app.scroll().min(max_scroll);
    let end = rows.len() - scroll;
    let start = end.saturating_sub(height);
    let visible: Vec<Line<'static>> = rows.drain(start..end).collect();
    frame.render_widget(Paragraph::new(visible), area);
    if scroll > 0 {
        let marker = match app.unread_below() {
            0 => format!(" ↓ {scroll} newer rows · Esc "),
            1 => " 1 new message ↓ · Esc ".to_owned(),
            n => format!(" {n} new messages ↓ · Esc "),
        };
        let w = u16::try_from(marker.width()).unwrap_or(u16::MAX).min(area.width);
        let spot = Rect {
            x: area.right().saturating_sub(w),
            y: area.bottom().saturating_sub(1),
            width: w,
            height: 1,
        };
        frame.render_widget(
            Paragraph::new(marker).style(Style::default().fg(Color::Black).bg(Color::Yellow)),
            spot,
        );
    }
    max_scroll
}

fn draw_sidebar(frame: &mut Frame<'_>, items: &[SidebarItem], area: Rect) {
    let block = Block::default().borders(Borders::LEFT).title(" clients ").border_style(dim());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut lines: Vec<Line<'static>> = Vec::new();
    if items.is_empty() {
        lines.push(Line::from(Span::styled(" nobody yet", dim())));
    }
    for item in items {
        let (mark, colour) = match item.status {
            PresenceStatus::Online => ("●", Color::Green),
            PresenceStatus::Reconnecting => ("◐", Color::Yellow),
            PresenceStatus::Offline => ("○", Color::DarkGray),
        };
        let mut name_style = Style::default();
        if item.selected {
            name_style = name_style.add_modifier(Modifier::REVERSED);
        }
        let mut spans = vec![
            Span::raw(if item.selected { "›" } else { " " }),
            Span::styled(mark, Style::default().fg(colour)),
            Span::raw(" "),
            Span::styled(item.client_id.clone(), name_style),
        ];
        if item.unread > 0 {
            spans.push(Span::styled(
                format!(" ({})", item.unread),
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            ));
        }
        if item.typing {
            spans.push(Span::styled(" …", Style::default().fg(Color::Cyan)));
        }
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The input's prompt: the DM recipient, or just `> `.
fn prompt(app: &App) -> String {
    match (&app.settings().mode, &app.dm().target) {
        (Mode::Dm { .. }, Some(target)) => format!("{target}> "),
        _ => "> ".to_owned(),
    }
}

/// The input box: the prompt on its first row, continuation rows indented under the
/// text, the cursor where the editor has it.
fn draw_input(frame: &mut Frame<'_>, prompt: &str, layout: &InputLayout, empty: bool, area: Rect) {
    let prompt_width = prompt.width();
    let prompt_style = Style::default().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let first = layout.first_shown();
    let lines: Vec<Line<'static>> = if empty {
        vec![Line::from(vec![
            Span::styled(prompt.to_owned(), prompt_style),
            Span::styled("type a message; /help lists commands", dim()),
        ])]
    } else {
        layout
            .rows
            .iter()
            .enumerate()
            .skip(first)
            .take(layout.height())
            .map(|(i, row)| {
                let lead = if i == 0 {
                    Span::styled(prompt.to_owned(), prompt_style)
                } else if i == first && first > 0 {
                    // Scrolled: rows above are hidden.
                    Span::styled(format!("{:>prompt_width$}", "↑ "), dim())
                } else {
                    Span::raw(" ".repeat(prompt_width))
                };
                Line::from(vec![lead, Span::raw(row.clone())])
            })
            .collect()
    };
    frame.render_widget(Paragraph::new(lines), area);
    let column = prompt_width + layout.cursor_col;
    let row = layout.cursor_row.saturating_sub(first);
    let x =
        area.x.saturating_add(u16::try_from(column).unwrap_or(u16::MAX)).min(area.right().saturating_sub(1));
    let y = area.y.saturating_add(u16::try_from(row).unwrap_or(0)).min(area.bottom().saturating_sub(1));
    frame.set_cursor_position((x, y));
}
