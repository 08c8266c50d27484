//! Labelled term vectors brought from outside the store: a CSV of `input,label,TERM…`
//! rows — an expert's annotations, or another annotator's likelihoods — so the retrieval
//! evaluation can run on terms no shipped model predicts (the paper's setting: several
//! categories of attribute terms per image, e.g. PH2's dermoscopic criteria).

use std::path::Path;

use super::RetrievalError;
use super::evaluate::Labelled;

/// The terms (header columns after `input,label`) and one labelled vector per row.
#[derive(Debug, Clone)]
pub struct LabelledVectors {
    pub terms: Vec<String>,
    pub items: Vec<Labelled>,
}

/// Reads and checks a vectors CSV: header `input,label,` then at least one term; every
/// row as long as the header, likelihoods finite and ≥ 0.
pub fn read(path: &Path) -> Result<LabelledVectors, RetrievalError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        RetrievalError::Invalid(format!(
            "vectors {}: cannot read it ({e}); write one `input,label,TERM…` row per image",
            path.display()
        ))
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses the CSV text; `path` names it in errors.
pub fn parse(text: &str, path: &str) -> Result<LabelledVectors, RetrievalError> {
    let bad = |line: usize, message: String| {
        RetrievalError::Invalid(format!("vectors {path}, line {line}: {message}"))
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    if header.len() < 3 || &header[0] != "input" || &header[1] != "label" {
        return Err(bad(
            1,
            "the header must be `input,label,` followed by the term names".into(),
        ));
    }
    let terms: Vec<String> = header.iter().skip(2).map(str::to_owned).collect();
    let mut items = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let line = n + 2;
        let record = record.map_err(|e| bad(line, e.to_string()))?;
        if record.len() != header.len() {
            return Err(bad(
                line,
                format!("{} fields, the header has {}", record.len(), header.len()),
            ));
        }
        let vector = record
            .iter()
            .skip(2)
            .zip(&terms)
            .map(|(field, term)| match field.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                _ => Err(bad(
                    line,
                    format!("{term} = {field:?}: a likelihood must be a finite number ≥ 0"),
                )),
            })
            .collect::<Result<Vec<f64>, _>>()?;
        items.push(Labelled {
            input: record[0].to_owned(),
            label: record[1].to_owned(),
            vector,
        });
    }
    Ok(LabelledVectors { terms, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_labelled_vectors() {
        let v = parse(
            "input,label,a,b\nx.jpg,melanoma,1,0.5\ny.jpg,nevus,0,1\n",
            "v.csv",
        )
        .unwrap();
        assert_eq!(v.terms, ["a", "b"]);
        assert_eq!(v.items.len(), 2);
        assert_eq!(v.items[0].label, "melanoma");
        assert_eq!(v.items[0].vector, [1.0, 0.5]);
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        let err = |text: &str| parse(text, "v.csv").unwrap_err().to_string();
        assert!(err("image,label,a\n").contains("header must be"));
        assert!(err("input,label\n").contains("header must be"));
        let e = err("input,label,a,b\nx,l,1\n");
        assert!(e.contains("line 2: 3 fields, the header has 4"), "{e}");
        let e = err("input,label,a\nx,l,-1\n");
        assert!(e.contains("line 2") && e.contains("a = \"-1\""), "{e}");
        assert!(err("input,label,a\nx,l,NaN\n").contains("finite"));
    }
}
