"""Rating exports written the way Letterboxd and IMDb write them (their documented columns), for
the import tests; nothing personal is committed, every file is made by the test that reads it."""

from __future__ import annotations

import csv
import io

LETTERBOXD_HEADER = ["Date", "Name", "Year", "Letterboxd URI", "Rating"]
IMDB_HEADER = ["Const", "Your Rating", "Date Rated", "Title", "Original Title", "URL",
               "Title Type", "IMDb Rating", "Runtime (mins)", "Year", "Genres", "Num Votes",
               "Release Date", "Directors"]

# Fifty well-known films as Letterboxd names them, and their ml-1m movie ids (None: not in
# ml-1m, which ends in 2000).
WELL_KNOWN = [
    ("Star Wars", 1977, 260), ("The Empire Strikes Back", 1980, 1196),
    ("Return of the Jedi", 1983, 1210), ("Raiders of the Lost Ark", 1981, 1198),
    ("Indiana Jones and the Last Crusade", 1989, 1291), ("Alien", 1979, 1214),
    ("Aliens", 1986, 1200), ("The Terminator", 1984, 1240),
    ("Terminator 2: Judgment Day", 1991, 589), ("Back to the Future", 1985, 1270),
    ("The Godfather", 1972, 858), ("The Godfather Part II", 1974, 1221),
    ("Pulp Fiction", 1994, 296), ("Fargo", 1996, 608), ("The Silence of the Lambs", 1991, 593),
    ("Schindler's List", 1993, 527), ("The Shawshank Redemption", 1994, 318),
    ("Forrest Gump", 1994, 356), ("Toy Story", 1995, 1), ("Toy Story 2", 1999, 3114),
    ("The Matrix", 1999, 2571), ("American Beauty", 1999, 2858), ("The Sixth Sense", 1999, 2762),
    ("Fight Club", 1999, 2959), ("Being John Malkovich", 1999, 2997),
    ("Saving Private Ryan", 1998, 2028), ("Titanic", 1997, 1721), ("Jurassic Park", 1993, 480),
    ("Men in Black", 1997, 1580), ("Braveheart", 1995, 110), ("The Usual Suspects", 1995, 50),
    ("L.A. Confidential", 1997, 1617), ("Casablanca", 1942, 912),
    ("2001: A Space Odyssey", 1968, 924),
    ("Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb", 1964, 750),
    ("One Flew Over the Cuckoo's Nest", 1975, 1193), ("The Princess Bride", 1987, 1197),
    ("Monty Python and the Holy Grail", 1975, 1136), ("E.T. the Extra-Terrestrial", 1982, 1097),
    ("Psycho", 1960, 1219), ("Blade Runner", 1982, 541), ("Princess Mononoke", 1997, 3000),
    ("Seven Samurai", 1954, 2019), ("Life Is Beautiful", 1997, 2324),
    ("Run Lola Run", 1998, 2692), ("12 Monkeys", 1995, 32),
    ("Léon: The Professional", 1994, 293), ("Se7en", 1995, 47),
    ("The Good, the Bad and the Ugly", 1966, 1201), ("Amélie", 2001, None),
]


def csv_bytes(header: list[str] | None, rows: list[list]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def letterboxd(films: list[tuple]) -> bytes:
    """films: (name, year, rating) rows of a Letterboxd ratings.csv."""
    return csv_bytes(LETTERBOXD_HEADER, [
        [f"2024-0{1 + k % 9}-1{k % 10}", name, year if year else "",
         f"https://boxd.it/{k:04x}", rating] for k, (name, year, rating) in enumerate(films)])


def imdb(titles: list[tuple]) -> bytes:
    """titles: (tt number or None, your rating 1-10, title, year, title type) rows."""
    return csv_bytes(IMDB_HEADER, [
        [f"tt{tt:07d}" if tt else "", rating, "2023-05-01", title, title,
         f"https://www.imdb.com/title/tt{tt or 0:07d}/", kind, "7.9", "120", year, "Drama",
         "100000", f"{year}-01-01", "Someone"] for tt, rating, title, year, kind in titles])
