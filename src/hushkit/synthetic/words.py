"""Hand-written English and Russian word lists and a random sentence generator for the synthetic corpus.

Sentences are clauses of the form "(the) ADJ* NOUN VERB (the) ADJ* NOUN [tail]" joined by conjunctions.
Russian agreement is kept simple but correct for these templates: the subject is nominative (adjectives
take its gender), the object is an inanimate noun in the accusative (masculine and neuter inanimate
accusative equals nominative; feminine -а/-я becomes -у/-ю, adjective -ая/-яя becomes -ую/-юю).
`make_sentence` returns exactly `n_words` words, so a caller can aim at a duration by word count.
"""
from __future__ import annotations

import numpy as np

LANGUAGES = ("en", "ru")

# ----------------------------------------------------------------------------------------------- English
EN_NOUNS = (
    "dog cat bird horse farmer teacher doctor child sailor painter baker driver neighbour student "
    "house garden river mountain window table chair door bottle basket letter book lamp clock road "
    "bridge train boat ship car bicycle apple orange bread cheese coffee kettle shirt jacket hat "
    "pencil paper picture mirror candle blanket pillow bucket ladder hammer rope wheel engine forest "
    "island village market castle kitchen camera guitar piano stone feather"
).split()
EN_VERBS = (
    "sees finds holds opens closes carries paints builds cleans fixes moves pushes pulls watches "
    "follows drops lifts covers counts reads writes sells buys brings takes wants needs likes "
    "remembers checks touches washes hides shows throws catches keeps fills visits passes leaves"
).split()
EN_ADJECTIVES = (
    "big small old young red green blue yellow black white bright dark heavy light quiet loud warm "
    "cold wet dry soft hard clean dirty happy tired quick slow tall short round square strong gentle "
    "famous simple strange empty broken wooden golden silver"
).split()
EN_ADVERBS = "quickly slowly quietly carefully again today gently loudly happily suddenly".split()
EN_PREPOSITIONS = "in on near under behind beside across inside".split()
EN_CONJUNCTIONS = ("and", "but", "while")
EN_DETERMINERS = ("the", "the", "a", "this", "that")

# ----------------------------------------------------------------------------------------------- Russian
# (word, gender "m"/"f"/"n", animate)
RU_NOUNS: tuple[tuple[str, str, bool], ...] = tuple(
    (word, gender, animate)
    for spec, gender, animate in (
        ("кот пёс конь врач учитель мальчик брат сосед моряк художник водитель повар студент рыбак", "m", True),
        ("кошка девочка сестра птица собака лиса бабушка учительница", "f", True),
        (
            "дом сад стол стул шкаф мост поезд корабль город лес парк мяч нож ключ чайник хлеб сыр "
            "телефон карандаш камень фонарь забор журнал рюкзак костюм компьютер",
            "m",
            False,
        ),
        ("книга лампа дверь река дорога машина чашка тарелка рубашка шапка ручка картина лодка "
         "корзина бутылка гитара улица комната", "f", False),
        ("окно кресло письмо яблоко озеро зеркало одеяло колесо ведро перо платье море", "n", False),
    )
    for word in spec.split()
)
RU_VERBS = (
    "видит читает держит ищет любит строит рисует открывает закрывает покупает продаёт моет несёт "
    "ждёт слышит помнит знает делает находит теряет чинит бросает ловит толкает тянет поднимает "
    "готовит проверяет считает меняет трогает чистит показывает получает отправляет забирает ставит "
    "везёт изучает охраняет"
).split()
RU_ADJECTIVES = (
    "большой маленький старый новый молодой красный зелёный синий жёлтый чёрный белый светлый тёмный "
    "тяжёлый лёгкий тихий громкий тёплый холодный мокрый сухой мягкий твёрдый чистый грязный весёлый "
    "быстрый медленный высокий низкий круглый сильный добрый простой странный пустой деревянный "
    "золотой хороший смешной"
).split()
RU_ADVERBS = "быстро медленно тихо громко осторожно снова сегодня вчера вечером утром".split()
RU_TAILS_2 = ("очень быстро", "каждый день", "прямо сейчас", "очень тихо", "почти всегда", "совсем медленно")
RU_TAILS_3 = ("рано утром сегодня", "снова и снова", "очень поздно вечером", "тихо и осторожно")
RU_CONJUNCTIONS = ("и", "а", "но")


def _ru_adjective(masculine: str, gender: str, accusative: bool = False) -> str:
    """Nominative (or accusative for an inanimate object) form of a masculine-nominative adjective."""
    if gender == "m":
        return masculine
    stem, ending = masculine[:-2], masculine[-2:]
    if ending in ("ый", "ой") or stem[-1] in "кгх":
        fem, neut = stem + "ая", stem + "ое"
    elif stem[-1] in "жшчщ":
        fem, neut = stem + "ая", stem + "ее"
    else:  # soft stem: синий -> синяя, синее
        fem, neut = stem + "яя", stem + "ее"
    if gender == "n":
        return neut
    if accusative:
        return fem[:-2] + ("ую" if fem.endswith("ая") else "юю")
    return fem


def _ru_accusative_noun(word: str, gender: str) -> str:
    if gender == "f" and word[-1] == "а":
        return word[:-1] + "у"
    if gender == "f" and word[-1] == "я":
        return word[:-1] + "ю"
    return word  # inanimate masculine/neuter, and feminine in -ь


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _adjectives(rng: np.random.Generator, pool, k: int) -> list:
    return [pool[i] for i in rng.choice(len(pool), size=k, replace=False)] if k else []


# Clause lengths: English 5..13 words ("the N V the N" plus up to 2+2 adjectives and a 4-word tail),
# Russian 3..10 words ("N V N" plus up to 2+2 adjectives and a 3-word tail).
_MIN_CLAUSE = {"en": 5, "ru": 3}
_MAX_CLAUSE = {"en": 13, "ru": 10}
_TAIL_LENGTHS = {"en": (0, 1, 3, 4), "ru": (0, 1, 2, 3)}


def _split_extra(rng: np.random.Generator, extra: int, language: str) -> tuple[int, int, int]:
    """Distribute `extra` words over (subject adjectives <= 2, object adjectives <= 2, tail)."""
    tails = [t for t in _TAIL_LENGTHS[language] if 0 <= extra - t <= 4]
    tail = _pick(rng, tails)
    rest = extra - tail
    low, high = max(0, rest - 2), min(2, rest)
    subj = int(rng.integers(low, high + 1))
    return subj, rest - subj, tail


def _en_np(rng: np.random.Generator, n_adj: int) -> list[str]:
    adjs = _adjectives(rng, EN_ADJECTIVES, n_adj)
    noun = _pick(rng, EN_NOUNS)
    det = _pick(rng, EN_DETERMINERS)
    first = (adjs + [noun])[0]
    if det == "a" and first[0] in "aeiou":
        det = "an"
    return [det, *adjs, noun]


def _en_clause(rng: np.random.Generator, length: int) -> list[str]:
    subj, obj, tail = _split_extra(rng, length - _MIN_CLAUSE["en"], "en")
    words = _en_np(rng, subj) + [_pick(rng, EN_VERBS)] + _en_np(rng, obj)
    if tail == 1:
        words.append(_pick(rng, EN_ADVERBS))
    elif tail:
        words += [_pick(rng, EN_PREPOSITIONS)] + _en_np(rng, tail - 3)
    return words


def _ru_clause(rng: np.random.Generator, length: int) -> list[str]:
    subj, obj, tail = _split_extra(rng, length - _MIN_CLAUSE["ru"], "ru")
    noun, gender, _ = _pick(rng, RU_NOUNS)
    words = [_ru_adjective(a, gender) for a in _adjectives(rng, RU_ADJECTIVES, subj)] + [noun]
    words.append(_pick(rng, RU_VERBS))
    objects = [entry for entry in RU_NOUNS if not entry[2]]
    onoun, ogender, _ = _pick(rng, objects)
    words += [_ru_adjective(a, ogender, accusative=True) for a in _adjectives(rng, RU_ADJECTIVES, obj)]
    words.append(_ru_accusative_noun(onoun, ogender))
    if tail == 1:
        words.append(_pick(rng, RU_ADVERBS))
    elif tail:
        words += _pick(rng, RU_TAILS_2 if tail == 2 else RU_TAILS_3).split()
    return words


def _short_phrase(rng: np.random.Generator, language: str, n_words: int) -> list[str]:
    """Fewer words than a clause: a noun phrase (with adjectives), e.g. "the old red lamp" / "старая лампа"."""
    if language == "en":
        if n_words == 1:
            return [_pick(rng, EN_NOUNS)]
        return _en_np(rng, n_words - 2) if n_words >= 2 else []
    noun, gender, _ = _pick(rng, RU_NOUNS)
    return [_ru_adjective(a, gender) for a in _adjectives(rng, RU_ADJECTIVES, n_words - 1)] + [noun]


def make_sentence(rng: np.random.Generator, language: str, n_words: int) -> str:
    """A random sentence of exactly `n_words` words in `language` ("en" or "ru"), capitalised, with a full stop."""
    if language not in LANGUAGES:
        raise ValueError(f"make_sentence: unknown language {language!r}; known: {', '.join(LANGUAGES)}")
    n_words = int(n_words)
    if n_words < 1:
        raise ValueError(f"make_sentence: n_words must be >= 1, got {n_words}")
    low, high = _MIN_CLAUSE[language], _MAX_CLAUSE[language]
    clause = _en_clause if language == "en" else _ru_clause
    conjunctions = EN_CONJUNCTIONS if language == "en" else RU_CONJUNCTIONS
    if n_words < low:
        words = _short_phrase(rng, language, n_words)
    else:
        words: list[str] = []
        remaining = n_words
        while remaining > high:
            # leave room for a conjunction and a complete last clause
            length = int(rng.integers(low, min(high, remaining - 1 - low) + 1))
            words += clause(rng, length)
            words[-1] += ","  # a comma before the conjunction: a pause and a clause-final pitch fall
            words.append(_pick(rng, conjunctions))
            remaining -= length + 1
        words += clause(rng, remaining)
    assert len(words) == n_words, (len(words), n_words)
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."
