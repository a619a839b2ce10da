//! Person names: a display form for the golden record and comparison keys that let
//! `张伟`, `Zhang Wei` and `Wei Zhang` meet.
//!
//! Every part is NFKC-normalised (full-width Latin becomes ASCII, ideographic space a space),
//! stripped of control characters and whitespace-collapsed; that cleaned text, in its original
//! case, is what [`PersonName::display`], [`PersonName::given`] and [`PersonName::family`]
//! return.
//!
//! Keys are lowercase ASCII where the script allows it:
//! - Latin letters are case-folded and stripped of diacritics (NFKD, combining marks dropped;
//!   `ß`→`ss`, `æ`→`ae`, `ø`→`o`, `ł`→`l` …). Apostrophes and dots join (`O'Brien`→`obrien`);
//!   hyphens and other punctuation separate tokens (`Jean-Luc`→`jean luc`).
//! - Han characters become tone-less pinyin, the syllables of one name part written together
//!   (`秀英`→`xiuying`, as people romanise given names); the family part uses surname readings
//!   (`曾`→`zeng`, `单`→`shan`, `解`→`xie`, …), and `ü` is written `v` (`吕`→`lv`), the
//!   input-method and `pypinyin` convention; Latin tokens `lü`/`lyu` and `nü`/`nyu` fold to
//!   `lv`/`nv` to meet it.
//! - Other scripts (kana, hangul, Cyrillic …) are kept, lowercased.
//!
//! A `full` name in Han script with no spaces (2–4 characters) is split into family and given
//! name when it starts with a known surname: compound surnames (`欧阳`, `司马`, `诸葛` …) are
//! tried first, then single-character ones. A Han full name written with one space
//! (`张 伟`) splits at the space, family first. A full name that does not start with a known
//! surname stays unsplit (it is very often a given name alone, as chat apps show it), and a
//! Latin full name is never split (its order is unknown: compare with
//! [`PersonName::tokens_key`]). [`PersonName::split_inferred`] tells when a split was guessed.

use std::fmt;

use pinyin::ToPinyin;
use serde::Serialize;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Longest accepted name part, in characters, after cleaning.
const MAX_PART_CHARS: usize = 200;

/// Why the given parts do not make a name. Carries no part of the input (PII).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name has no letters")]
    NoLetters,
    #[error("name part is too long")]
    TooLong,
}

/// The writing system a name is in, for choosing comparators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum NameScript {
    /// Only Han characters (hanzi/kanji).
    Han,
    /// Only Latin letters.
    Latin,
    /// Han and Latin together.
    Mixed,
    /// Anything else (Cyrillic, kana, hangul …), possibly with Latin.
    Other,
}

/// A parsed person name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PersonName {
    given: Option<String>,
    family: Option<String>,
    display: String,
    given_key: Option<String>,
    family_key: Option<String>,
    pinyin_key: String,
    tokens_key: String,
    script: NameScript,
    split_inferred: bool,
}

impl PersonName {
    /// Builds a name from whatever parts a source has. `given`/`family` win over `full` for
    /// the parts; `full` (when present) is the display form. Blank parts count as absent.
    pub fn parse(given: Option<&str>, family: Option<&str>, full: Option<&str>) -> Result<PersonName, NameError> {
        let given = clean_part(given)?;
        let family = clean_part(family)?;
        let full = clean_part(full)?;
        if given.is_none() && family.is_none() && full.is_none() {
            return Err(NameError::Empty);
        }

        let (given, family, split_inferred) = match (given, family, &full) {
            (None, None, Some(full)) => match split_han_full_name(full) {
                Some((family, given)) => (Some(given), Some(family), true),
                None => (None, None, false),
            },
            (given, family, _) => (given, family, false),
        };

        let script = detect_script([given.as_deref(), family.as_deref(), full.as_deref()].into_iter().flatten());
        let han = script == NameScript::Han;

        let given_key = given.as_deref().map(|g| key_of(g, false));
        let family_key = family.as_deref().map(|f| key_of(f, true));
        let pinyin_key = match (&family_key, &given_key) {
            (Some(f), Some(g)) => join_nonempty(f, g),
            (Some(f), None) => f.clone(),
            (None, Some(g)) => g.clone(),
            (None, None) => full.as_deref().map(|f| key_of(f, false)).unwrap_or_default(),
        };
        if pinyin_key.is_empty() {
            return Err(NameError::NoLetters);
        }
        let mut tokens: Vec<&str> = pinyin_key.split(' ').collect();
        tokens.sort_unstable();
        let tokens_key = tokens.join(" ");

        let display = match (&full, &given, &family) {
            (Some(full), _, _) => full.clone(),
            (None, Some(g), Some(f)) if han => format!("{f}{g}"),
            (None, Some(g), Some(f)) => format!("{g} {f}"),
            (None, Some(only), None) | (None, None, Some(only)) => only.clone(),
            (None, None, None) => return Err(NameError::Empty),
        };

        Ok(PersonName { given, family, display, given_key, family_key, pinyin_key, tokens_key, script, split_inferred })
    }

    /// The name for the golden record: original casing, NFKC, trimmed and whitespace-collapsed.
    /// The `full` input when there was one, else family+given for Han names, else given family.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Given name (cleaned, original case), given or split from a Han full name.
    pub fn given(&self) -> Option<&str> {
        self.given.as_deref()
    }

    /// Family name (cleaned, original case), given or split from a Han full name.
    pub fn family(&self) -> Option<&str> {
        self.family.as_deref()
    }

    /// Folded key of the given name alone.
    pub fn given_key(&self) -> Option<&str> {
        self.given_key.as_deref()
    }

    /// Folded key of the family name alone (surname readings for Han).
    pub fn family_key(&self) -> Option<&str> {
        self.family_key.as_deref()
    }

    /// Family-first folded key: `张伟`, `given=Wei family=Zhang` → `zhang wei`;
    /// `欧阳秀英` → `ouyang xiuying`. A full name that was not split keeps its written order
    /// (`Wei Zhang` → `wei zhang`). Never empty.
    pub fn pinyin_key(&self) -> &str {
        &self.pinyin_key
    }

    /// Order-insensitive key: the tokens of [`PersonName::pinyin_key`] sorted, so `Wei Zhang`
    /// and `张伟` both give `wei zhang`.
    pub fn tokens_key(&self) -> &str {
        &self.tokens_key
    }

    /// Script of the name as written.
    pub fn script(&self) -> NameScript {
        self.script
    }

    /// True when family and given were split out of a Han full name by the surname table
    /// (a guess: a given name alone that starts with a surname character splits wrongly).
    pub fn split_inferred(&self) -> bool {
        self.split_inferred
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

fn join_nonempty(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (false, false) => format!("{a} {b}"),
        (true, _) => b.to_owned(),
        (false, true) => a.to_owned(),
    }
}

/// NFKC, control characters removed, whitespace collapsed; `None` when blank.
fn clean_part(part: Option<&str>) -> Result<Option<String>, NameError> {
    let Some(part) = part else {
        return Ok(None);
    };
    let out = if part.is_ascii() {
        // NFKC leaves every ASCII character as it is; the normaliser's machinery was most
        // of a name's parse, which runs for every record and every change of a golden name.
        collapsed(part.chars(), part.len())
    } else {
        collapsed(part.nfkc(), part.len())
    };
    if out.is_empty() {
        return Ok(None);
    }
    if out.chars().count() > MAX_PART_CHARS {
        return Err(NameError::TooLong);
    }
    Ok(Some(out))
}

/// `chars` without control characters and zero-width spaces, whitespace collapsed to one
/// space between words.
fn collapsed(chars: impl Iterator<Item = char>, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    let mut pending_space = false;
    for c in chars {
        if c.is_whitespace() || c.is_control() || matches!(c, '\u{200B}' | '\u{FEFF}') {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    out
}

fn is_han(c: char) -> bool {
    matches!(c,
        '\u{3400}'..='\u{4DBF}'   // Extension A
        | '\u{4E00}'..='\u{9FFF}' // Unified Ideographs
        | '\u{F900}'..='\u{FAFF}' // Compatibility (mostly mapped away by NFKC)
        | '\u{20000}'..='\u{2EBEF}' // Extensions B–F
        | '\u{30000}'..='\u{323AF}' // Extensions G–H
        | '\u{3007}' // 〇
    )
}

fn detect_script<'a>(parts: impl Iterator<Item = &'a str>) -> NameScript {
    let (mut han, mut latin, mut other) = (false, false, false);
    for c in parts.flat_map(str::chars).filter(|c| c.is_alphabetic()) {
        if is_han(c) {
            han = true;
        } else if is_latin(c) {
            latin = true;
        } else {
            other = true;
        }
    }
    match (han, latin, other) {
        (_, _, true) => NameScript::Other,
        (true, true, false) => NameScript::Mixed,
        (true, false, false) => NameScript::Han,
        _ => NameScript::Latin,
    }
}

fn is_latin(c: char) -> bool {
    c.is_ascii_alphabetic()
        || matches!(c, '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}' | '\u{2C60}'..='\u{2C7F}' | '\u{A720}'..='\u{A7FF}')
}

/// Splits a Han full name into (family, given) when it starts with a known surname.
fn split_han_full_name(full: &str) -> Option<(String, String)> {
    if let Some((family, given)) = full.split_once(' ') {
        let all_han = |s: &str| !s.is_empty() && s.chars().all(is_han);
        return (all_han(family) && all_han(given) && !given.contains(' '))
            .then(|| (family.to_owned(), given.to_owned()));
    }
    let chars: Vec<char> = full.chars().collect();
    if !(2..=4).contains(&chars.len()) || !chars.iter().all(|&c| is_han(c)) {
        return None;
    }
    if chars.len() >= 3 {
        let head: String = chars[..2].iter().collect();
        if COMPOUND_SURNAMES.contains(&head.as_str()) {
            return Some((head, chars[2..].iter().collect()));
        }
    }
    if SINGLE_SURNAMES.contains(chars[0]) && chars.len() <= 3 {
        return Some((chars[0].to_string(), chars[1..].iter().collect()));
    }
    None
}

/// The comparison key of one name part.
fn key_of(part: &str, is_family: bool) -> String {
    if is_family {
        if let Some((_, reading)) = SURNAME_READINGS.iter().find(|(s, _)| *s == part) {
            return (*reading).to_owned();
        }
    }
    let mut out = String::with_capacity(part.len() + 8);
    // Whether the last thing written was a Han syllable, so a Latin letter after it starts
    // a new token while consecutive Han syllables stay together.
    let mut last_han = false;
    let mut need_space = false;
    for c in part.chars() {
        if is_han(c) {
            if need_space || (!last_han && !out.is_empty() && !out.ends_with(' ')) {
                out.push(' ');
            }
            need_space = false;
            let reading = c.to_pinyin().map(|p| p.plain()).unwrap_or_default();
            out.extend(reading.chars().map(|c| if c == 'ü' { 'v' } else { c }));
            last_han = true;
        } else if c.is_alphanumeric() {
            if need_space || last_han {
                out.push(' ');
            }
            need_space = false;
            last_han = false;
            fold_letter(c, &mut out);
        } else if is_joiner(c) || is_combining_mark(c) {
            // O'Brien → obrien; J.R. → jr
        } else {
            need_space = !out.is_empty();
        }
    }
    out.split_whitespace().map(fold_pinyin_u).collect::<Vec<_>>().join(" ")
}

fn is_joiner(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{2018}' | '\u{02BC}' | '`' | '\u{00B4}' | '.')
}

/// Appends the case-folded, diacritic-free form of one letter or digit.
fn fold_letter(c: char, out: &mut String) {
    match c {
        // Its own decomposition, lowercased.
        c if c.is_ascii() => out.push(c.to_ascii_lowercase()),
        'ß' | 'ẞ' => out.push_str("ss"),
        'Æ' | 'æ' => out.push_str("ae"),
        'Œ' | 'œ' => out.push_str("oe"),
        'Ø' | 'ø' => out.push('o'),
        'Ł' | 'ł' => out.push('l'),
        'Đ' | 'đ' | 'Ð' | 'ð' => out.push('d'),
        'Þ' | 'þ' => out.push_str("th"),
        'ı' => out.push('i'),
        _ => {
            for d in std::iter::once(c).nfkd().filter(|&d| !is_combining_mark(d)) {
                out.extend(d.to_lowercase());
            }
        }
    }
}

/// `lü`/`lyu` → `lv`, `nü`/`nyu` → `nv` for whole tokens (after diacritic folding `lü` is
/// `lu`, which is ambiguous with 卢/陆/鲁, so only the unambiguous spellings are mapped).
fn fold_pinyin_u(token: &str) -> &str {
    match token {
        "lyu" => "lv",
        "nyu" => "nv",
        other => other,
    }
}

/// Two-character surnames, simplified and traditional.
const COMPOUND_SURNAMES: &[&str] = &[
    "欧阳", "司马", "诸葛", "上官", "皇甫", "令狐", "慕容", "司徒", "夏侯", "东方", "尉迟", "长孙", "宇文", "公孙",
    "轩辕", "端木", "独孤", "南宫", "西门", "百里", "呼延", "万俟", "司空", "澹台", "公冶", "宗政", "濮阳", "淳于",
    "单于", "太叔", "申屠", "钟离", "闻人", "赫连", "拓跋", "第五", "东郭", "乐正", "公羊", "左丘", "漆雕", "司寇",
    "子车", "巫马", "谷梁", "梁丘", "段干", "仲孙", "歐陽", "司馬", "諸葛", "東方", "尉遲", "長孫", "軒轅", "獨孤",
    "南宮", "西門", "鍾離", "聞人", "赫連", "淳於", "單于", "萬俟", "夏侯", "皇甫", "令狐", "慕容", "司徒", "上官",
    "宇文", "公孫",
];

/// Single-character surnames that are common enough to split on. Characters that are far
/// more often the first character of a given name than a surname (秀, 丽, 建, 玉, 海, 红, 春,
/// 志, 明, 国 …) are left out on purpose: a chat app often shows the given name alone.
const SINGLE_SURNAMES: &str = concat!(
    // the 100 most common, roughly by population
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程",
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚",
    "邵万钱严覃武戴莫孔向汤",
    // further common ones (incl. all that occur in the sample data)
    "常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅",
    "童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤时穆农司卓古吉",
    "缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣",
    "巫寇桑郎甄丛仲虞敖巩佘池查麻苑迟邝官封谈匡鞠惠荆乐冀郁胥南班储原栗楚鄢劳谌奚皮粟冼蔺楼",
    "盘满闻位厉伊仝区郜阚权强帅屠豆朴盖练廉禹井祖漆巴丰支卿狄计索宣晋相初门云容敬来扈晁",
    "芮都普阙浦戈伏鹿薄邸雍辜羊阿乌母裘亓修邰赫杭况那宿鲜印逯隆茹诸战慕危银亢嵇公哈湛宾戎勾茅",
    "利於呼居揭干但尉冶斯元束檀衣信展阴昝智幸奉植衡富尧闭由",
    // traditional forms of common ones
    "張陳劉楊黃趙吳孫馬鄭謝韓馮鄧蕭葉蘇盧蔣魏呂羅賴錢顧龔陸嚴鍾譚賈鄒閻顏龍萬聶蔡戴彭潘崔韋劉",
    "許曾梁沈葉湯樂喬齊廖尹薛閔羅駱鄺歐單關陶",
);

/// Surname readings where the everyday (first) reading of the character is wrong.
const SURNAME_READINGS: &[(&str, &str)] = &[
    ("曾", "zeng"),
    ("单", "shan"),
    ("單", "shan"),
    ("解", "xie"),
    ("翟", "zhai"),
    ("乐", "yue"),
    ("樂", "yue"),
    ("覃", "qin"),
    ("缪", "miao"),
    ("繆", "miao"),
    ("盖", "ge"),
    ("蓋", "ge"),
    ("仇", "qiu"),
    ("朴", "piao"),
    ("查", "zha"),
    ("区", "ou"),
    ("區", "ou"),
    ("秘", "bi"),
    ("种", "chong"),
    ("繁", "po"),
    ("句", "gou"),
    ("员", "yun"),
    ("召", "shao"),
    ("都", "du"),
    ("重", "chong"),
    ("薄", "bo"),
    ("隗", "wei"),
    ("藏", "zang"),
    ("折", "she"),
    ("黑", "he"),
    ("尉迟", "yuchi"),
    ("尉遲", "yuchi"),
    ("万俟", "moqi"),
    ("萬俟", "moqi"),
    ("长孙", "zhangsun"),
    ("長孫", "zhangsun"),
    ("单于", "chanyu"),
    ("單于", "chanyu"),
    ("澹台", "tantai"),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn full(s: &str) -> PersonName {
        PersonName::parse(None, None, Some(s)).unwrap()
    }

    fn parts(given: &str, family: &str) -> PersonName {
        PersonName::parse(Some(given), Some(family), None).unwrap()
    }

    /// The ASCII shortcuts in `clean_part` and `fold_letter` give what the normaliser gives:
    /// every ASCII character alone, and random ASCII strings of letters, digits, spaces,
    /// controls and punctuation. Fails if a shortcut drops, keeps or folds a character
    /// differently.
    #[test]
    fn ascii_shortcuts_match_the_normaliser() {
        let mut samples: Vec<String> = (0u8..128).map(|b| char::from(b).to_string()).collect();
        let alphabet: Vec<char> = "aZ09 \t\n\r\x0b\x0c\x00\x1f\x7f.'`-_,;:!?/\\()[]{}#@&*+=~^|\"<>$%".chars().collect();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..5_000 {
            let len = (state % 24) as usize;
            let s: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % alphabet.len() as u64) as usize]
                })
                .collect();
            samples.push(s);
        }
        for s in &samples {
            let by_nfkc = Some(collapsed(s.nfkc(), 0)).filter(|c| !c.is_empty());
            assert_eq!(clean_part(Some(s)).unwrap(), by_nfkc, "{s:?}");
        }
        for c in (0u8..128).map(char::from).filter(char::is_ascii_alphanumeric) {
            let mut shortcut = String::new();
            fold_letter(c, &mut shortcut);
            let by_nfkd: String =
                std::iter::once(c).nfkd().filter(|&d| !is_combining_mark(d)).flat_map(char::to_lowercase).collect();
            assert_eq!(shortcut, by_nfkd, "{c:?}");
        }
    }

    #[test]
    fn han_full_name_splits_single_char_surname() {
        let n = full("张伟");
        assert_eq!(n.family(), Some("张"));
        assert_eq!(n.given(), Some("伟"));
        assert_eq!(n.pinyin_key(), "zhang wei");
        assert_eq!(n.tokens_key(), "wei zhang");
        assert_eq!(n.display(), "张伟");
        assert_eq!(n.script(), NameScript::Han);
        assert!(n.split_inferred());

        let n = full("王秀英");
        assert_eq!((n.family(), n.given()), (Some("王"), Some("秀英")));
        assert_eq!(n.pinyin_key(), "wang xiuying");
    }

    #[test]
    fn han_full_name_splits_compound_surnames_first() {
        for (name, family, given, key) in [
            ("欧阳娜娜", "欧阳", "娜娜", "ouyang nana"),
            ("欧阳修", "欧阳", "修", "ouyang xiu"),
            ("司马迁", "司马", "迁", "sima qian"),
            ("诸葛亮", "诸葛", "亮", "zhuge liang"),
            ("上官婉儿", "上官", "婉儿", "shangguan waner"),
            ("皇甫嵩", "皇甫", "嵩", "huangfu song"),
            ("令狐冲", "令狐", "冲", "linghu chong"),
            ("慕容复", "慕容", "复", "murong fu"),
            ("司徒雷", "司徒", "雷", "situ lei"),
            ("夏侯惇", "夏侯", "惇", "xiahou dun"),
            ("东方明", "东方", "明", "dongfang ming"),
            ("尉迟恭", "尉迟", "恭", "yuchi gong"),
            ("歐陽修", "歐陽", "修", "ouyang xiu"),
        ] {
            let n = full(name);
            assert_eq!(n.family(), Some(family), "{name}");
            assert_eq!(n.given(), Some(given), "{name}");
            assert_eq!(n.pinyin_key(), key, "{name}");
        }
    }

    #[test]
    fn two_char_compound_alone_is_not_a_compound_split() {
        // "欧阳" alone is read as surname 欧 + given 阳, not a family with no given name
        let n = full("欧阳");
        assert_eq!((n.family(), n.given()), (Some("欧"), Some("阳")));
    }

    #[test]
    fn han_given_name_alone_stays_unsplit() {
        // chat apps often show only the given name; 秀/丽/建 are not surnames we split on
        for (name, key) in [("秀英", "xiuying"), ("丽娟", "lijuan"), ("建国", "jianguo")] {
            let n = full(name);
            assert_eq!((n.family(), n.given()), (None, None), "{name}");
            assert_eq!(n.pinyin_key(), key);
            assert_eq!(n.display(), name);
            assert!(!n.split_inferred());
        }
        // a single character cannot be split
        let n = full("伟");
        assert_eq!((n.family(), n.given(), n.pinyin_key()), (None, None, "wei"));
    }

    #[test]
    fn han_full_name_with_a_space_splits_at_the_space() {
        let n = full("张 伟");
        assert_eq!((n.family(), n.given()), (Some("张"), Some("伟")));
        let n = full("\u{3000}秀\u{3000}英 ");
        assert_eq!((n.family(), n.given()), (Some("秀"), Some("英")));
        assert_eq!(n.display(), "秀 英");
    }

    #[test]
    fn long_han_full_names_stay_unsplit() {
        let n = full("张王李赵刘");
        assert_eq!(n.family(), None);
        assert_eq!(n.pinyin_key(), "zhangwanglizhaoliu");
    }

    #[test]
    fn hanzi_and_pinyin_forms_meet() {
        let han = full("张伟");
        let latin_parts = parts("Wei", "Zhang");
        let latin_full_western = full("Wei Zhang");
        let latin_full_eastern = full("Zhang Wei");
        assert_eq!(han.pinyin_key(), latin_parts.pinyin_key());
        assert_eq!(han.pinyin_key(), latin_full_eastern.pinyin_key());
        assert_eq!(han.tokens_key(), latin_full_western.tokens_key());
        assert_eq!(han.tokens_key(), latin_parts.tokens_key());
        assert_ne!(han.pinyin_key(), latin_full_western.pinyin_key());
    }

    #[test]
    fn generator_style_pinyin_matches_hanzi() {
        // gen_customers.py writes given "XiuYing", family "Ouyang"
        assert_eq!(parts("XiuYing", "Ouyang").pinyin_key(), "ouyang xiuying");
        assert_eq!(full("欧阳秀英").pinyin_key(), "ouyang xiuying");
        assert_eq!(parts("秀英", "欧阳").pinyin_key(), parts("Xiuying", "OUYANG").pinyin_key());
    }

    #[test]
    fn family_part_uses_surname_readings() {
        assert_eq!(parts("伟", "曾").pinyin_key(), "zeng wei");
        assert_eq!(full("曾伟").pinyin_key(), "zeng wei");
        assert_eq!(full("单伟").pinyin_key(), "shan wei");
        assert_eq!(full("解伟").pinyin_key(), "xie wei");
        assert_eq!(full("翟伟").pinyin_key(), "zhai wei");
        assert_eq!(full("仇伟").pinyin_key(), "qiu wei");
        assert_eq!(full("万俟伟").pinyin_key(), "moqi wei");
        // ... but the same character in a given name keeps its everyday reading
        assert_eq!(parts("曾", "王").pinyin_key(), "wang ceng");
    }

    #[test]
    fn u_umlaut_is_written_v() {
        assert_eq!(full("吕伟").pinyin_key(), "lv wei");
        assert_eq!(parts("Wei", "Lv").pinyin_key(), "lv wei");
        assert_eq!(parts("Wei", "Lyu").pinyin_key(), "lv wei");
        // German ü is plain u
        assert_eq!(parts("Jürgen", "Müller").pinyin_key(), "muller jurgen");
    }

    #[test]
    fn latin_names_fold_case_and_diacritics() {
        let n = parts("Berend", "Jäntsch");
        assert_eq!(n.pinyin_key(), "jantsch berend");
        assert_eq!(n.family_key(), Some("jantsch"));
        assert_eq!(n.given_key(), Some("berend"));
        assert_eq!(n.display(), "Berend Jäntsch");
        assert_eq!(parts("Ángel", "Domínguez").pinyin_key(), "dominguez angel");
        assert_eq!(parts("Hans", "Süßebier").pinyin_key(), "sussebier hans");
        assert_eq!(parts("Søren", "Kierkegaard").pinyin_key(), "kierkegaard soren");
        assert_eq!(parts("Zoë", "Łukasiewicz").pinyin_key(), "lukasiewicz zoe");
        assert_eq!(parts("Frédérique", "Lefèvre").pinyin_key(), "lefevre frederique");
        assert_eq!(parts("ANA", "NIÑO").pinyin_key(), "nino ana");
    }

    #[test]
    fn decomposed_and_composed_input_are_one_key() {
        let composed = parts("Jos\u{00E9}", "G\u{00F3}mez");
        let decomposed = parts("Jose\u{0301}", "Go\u{0301}mez");
        assert_eq!(composed.pinyin_key(), decomposed.pinyin_key());
        assert_eq!(composed.display(), decomposed.display());
    }

    #[test]
    fn punctuation_joins_or_separates() {
        assert_eq!(parts("Sean", "O'Brien").pinyin_key(), "obrien sean");
        assert_eq!(parts("Sean", "O\u{2019}Brien").pinyin_key(), "obrien sean");
        assert_eq!(parts("Jean-Luc", "Picard").pinyin_key(), "picard jean luc");
        assert_eq!(parts("J.R.", "Smith").pinyin_key(), "smith jr");
        assert_eq!(parts("Anna", "Jacobi Jäckel").pinyin_key(), "jacobi jackel anna");
        assert_eq!(full("Miguel Ángel").pinyin_key(), "miguel angel");
    }

    #[test]
    fn nfkc_and_whitespace_collapse() {
        let n = PersonName::parse(Some("  Ｊｏｈｎ \t "), Some("Smith\u{00A0}\u{00A0}Jones"), None).unwrap();
        assert_eq!(n.given(), Some("John"));
        assert_eq!(n.family(), Some("Smith Jones"));
        assert_eq!(n.display(), "John Smith Jones");
        assert_eq!(n.pinyin_key(), "smith jones john");
        assert_eq!(n.tokens_key(), "john jones smith");
    }

    #[test]
    fn display_keeps_original_case() {
        assert_eq!(parts("mcDonald", "RONALD").display(), "mcDonald RONALD");
        assert_eq!(parts("伟", "张").display(), "张伟");
        assert_eq!(PersonName::parse(Some("Wei"), Some("Zhang"), Some(" Zhang  Wei ")).unwrap().display(), "Zhang Wei");
    }

    #[test]
    fn parts_win_over_full() {
        let n = PersonName::parse(Some("Wei"), Some("Zhang"), Some("张伟")).unwrap();
        assert_eq!((n.given(), n.family()), (Some("Wei"), Some("Zhang")));
        assert_eq!(n.display(), "张伟");
        assert_eq!(n.pinyin_key(), "zhang wei");
        assert_eq!(n.script(), NameScript::Mixed);
        assert!(!n.split_inferred());
    }

    #[test]
    fn single_parts() {
        let n = PersonName::parse(Some("Gabriel"), None, None).unwrap();
        assert_eq!((n.given(), n.family(), n.pinyin_key()), (Some("Gabriel"), None, "gabriel"));
        let n = PersonName::parse(None, Some("Davis"), Some("   ")).unwrap();
        assert_eq!((n.family_key(), n.display()), (Some("davis"), "Davis"));
        // Latin full names are never split
        let n = full("Randy Davis");
        assert_eq!((n.given(), n.family()), (None, None));
        assert_eq!(n.pinyin_key(), "randy davis");
        assert_eq!(n.tokens_key(), "davis randy");
    }

    #[test]
    fn rejects_empty_and_letterless() {
        assert_eq!(PersonName::parse(None, None, None), Err(NameError::Empty));
        assert_eq!(PersonName::parse(Some(" "), Some("\t"), Some("\u{3000}")), Err(NameError::Empty));
        assert_eq!(PersonName::parse(Some("---"), None, None), Err(NameError::NoLetters));
        assert_eq!(PersonName::parse(None, None, Some("'.'")), Err(NameError::NoLetters));
        assert_eq!(PersonName::parse(Some(&"a".repeat(201)), None, None), Err(NameError::TooLong));
    }

    #[test]
    fn other_scripts_are_kept_lowercased() {
        let n = parts("Иван", "Петров");
        assert_eq!(n.pinyin_key(), "петров иван");
        assert_eq!(n.script(), NameScript::Other);
        // kana composes under NFKC (half-width katakana → full-width)
        assert_eq!(full("ﾀﾛｳ").pinyin_key(), "タロウ");
    }

    #[test]
    fn mixed_han_and_latin_in_one_part_are_separate_tokens() {
        assert_eq!(full("Wei张").pinyin_key(), "wei zhang");
        assert_eq!(full("张Wei").pinyin_key(), "zhang wei");
    }

    #[test]
    fn homophones_share_a_key_but_different_names_do_not() {
        // 张 and 章 are both "zhang": the key cannot tell them apart (the matcher weighs it)
        assert_eq!(full("张伟").pinyin_key(), full("章伟").pinyin_key());
        assert_ne!(full("李娜").pinyin_key(), full("李娟").pinyin_key());
    }
}
