//! A PDF read back with Debian's poppler-utils and zbar-tools (`infra/dev` installs them): its
//! text, a page as PNG, and the QR codes of a page.

use std::{path::PathBuf, process::Command};

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ticket-pdf-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|err| {
        panic!("running {command:?} (apt-get install poppler-utils zbar-tools): {err}")
    });
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text of every page (`pdftotext -layout`).
pub fn pdf_text(pdf: &[u8]) -> String {
    let dir = scratch();
    let file = dir.join("tickets.pdf");
    std::fs::write(&file, pdf).expect("written");
    let text = run(Command::new("pdftotext").arg("-layout").arg(&file).arg("-"));
    let _ = std::fs::remove_dir_all(&dir);
    text
}

/// Renders page `page` (from 1) to PNG at 150 dpi and returns the PNG's bytes.
pub fn page_png(pdf: &[u8], page: u32) -> Vec<u8> {
    page_png_at(pdf, page, 150)
}

/// Renders page `page` (from 1) to PNG at `dpi` and returns the PNG's bytes.
pub fn page_png_at(pdf: &[u8], page: u32, dpi: u32) -> Vec<u8> {
    let dir = scratch();
    let file = dir.join("tickets.pdf");
    std::fs::write(&file, pdf).expect("written");
    let page = page.to_string();
    let dpi = dpi.to_string();
    run(Command::new("pdftoppm")
        .args(["-png", "-r", &dpi, "-singlefile", "-f", &page, "-l", &page])
        .arg(&file)
        .arg(dir.join("page")));
    let png = std::fs::read(dir.join("page.png")).expect("the page's PNG");
    let _ = std::fs::remove_dir_all(&dir);
    png
}

/// The QR codes `zbarimg` finds on page `page` (from 1), rendered at 150 dpi.
pub fn qr_codes(pdf: &[u8], page: u32) -> Vec<String> {
    qr_codes_at(pdf, page, 150)
}

/// The QR codes `zbarimg` finds on page `page` (from 1), rendered at `dpi`.
pub fn qr_codes_at(pdf: &[u8], page: u32, dpi: u32) -> Vec<String> {
    let dir = scratch();
    let png = dir.join("page.png");
    std::fs::write(&png, page_png_at(pdf, page, dpi)).expect("written");
    let out = run(Command::new("zbarimg")
        .args(["--quiet", "--raw", "-Sdisable", "-Sqrcode.enable"])
        .arg(&png));
    let _ = std::fs::remove_dir_all(&dir);
    out.lines()
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect()
}
